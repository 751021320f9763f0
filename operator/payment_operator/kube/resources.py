"""Where each kind the operator manages lives in the API (group, version, plural, scope)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resource:
    """An API resource: enough to build its REST paths without discovery."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def collection(self, namespace: str | None) -> str:
        base = f"/api/{self.api_version}" if not self.group else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def path(self, namespace: str | None, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


PAYMENT_SERVICE = Resource("paydeck.dev/v1alpha1", "PaymentService", "paymentservices")

KNOWN: tuple[Resource, ...] = (
    PAYMENT_SERVICE,
    Resource("v1", "ServiceAccount", "serviceaccounts"),
    Resource("v1", "ConfigMap", "configmaps"),
    Resource("v1", "Service", "services"),
    Resource("v1", "Event", "events"),
    Resource("apps/v1", "Deployment", "deployments"),
    Resource("batch/v1", "Job", "jobs"),
    Resource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Resource("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    Resource("networking.k8s.io/v1", "Ingress", "ingresses"),
    Resource("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    Resource("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
    Resource("external-secrets.io/v1beta1", "ExternalSecret", "externalsecrets"),
    Resource("external-secrets.io/v1beta1", "SecretStore", "secretstores"),
    Resource("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass", "secretproviderclasses"),
    Resource("kafka.strimzi.io/v1beta2", "KafkaTopic", "kafkatopics"),
)

_BY_KIND = {(r.api_version, r.kind): r for r in KNOWN}


def of(manifest: Mapping[str, Any]) -> Resource:
    """The resource of a manifest; KeyError for a kind this operator does not manage."""
    return _BY_KIND[(manifest["apiVersion"], manifest["kind"])]


def by_kind(api_version: str, kind: str) -> Resource:
    return _BY_KIND[(api_version, kind)]
