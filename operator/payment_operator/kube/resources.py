"""Where each kind the operator manages lives in the API (group, version, plural, scope)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resource:
    """An API resource: enough to build its REST paths without discovery.

    ``child`` marks kinds the operator creates (and so may prune and watches for drift);
    ``capability`` names the :class:`~payment_operator.builders.Capabilities` flag an
    optional API depends on (None: served by every cluster).
    """

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True
    child: bool = False
    capability: str | None = None

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
    Resource("v1", "ServiceAccount", "serviceaccounts", child=True),
    Resource("v1", "ConfigMap", "configmaps", child=True),
    Resource("v1", "Service", "services", child=True),
    Resource("apps/v1", "Deployment", "deployments", child=True),
    Resource("batch/v1", "Job", "jobs", child=True),
    Resource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", child=True),
    Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", child=True),
    Resource("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", child=True),
    Resource("networking.k8s.io/v1", "Ingress", "ingresses", child=True),
    Resource("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors",
             child=True, capability="prometheus_operator"),
    Resource("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules",
             child=True, capability="prometheus_operator"),
    Resource("external-secrets.io/v1beta1", "ExternalSecret", "externalsecrets",
             child=True, capability="external_secrets"),
    Resource("external-secrets.io/v1beta1", "SecretStore", "secretstores",
             child=True, capability="external_secrets"),
    Resource("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass", "secretproviderclasses",
             child=True, capability="secrets_store_csi"),
    Resource("kafka.strimzi.io/v1beta2", "KafkaTopic", "kafkatopics",
             child=True, capability="strimzi"),
)

#: Children every cluster serves: watched for drift through child events.
CORE_CHILDREN = tuple(r for r in KNOWN if r.child and r.capability is None)


def children(capabilities: object) -> tuple[Resource, ...]:
    """Child kinds the cluster serves, given its capabilities (an object with bool flags)."""
    return tuple(
        r for r in KNOWN
        if r.child and (r.capability is None or getattr(capabilities, r.capability, False))
    )


_BY_KIND = {(r.api_version, r.kind): r for r in KNOWN}


def of(manifest: Mapping[str, Any]) -> Resource:
    """The resource of a manifest; KeyError for a kind this operator does not manage."""
    return _BY_KIND[(manifest["apiVersion"], manifest["kind"])]


def by_kind(api_version: str, kind: str) -> Resource:
    return _BY_KIND[(api_version, kind)]
