"""Where each kind the operator manages lives in the API (group, version, plural, scope)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payment_operator import policy
from payment_operator.builders import Capabilities, kafka, monitoring, secrets


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
#: Core Events (the rollout posts its own through this client: kube/record.py).
EVENT = Resource("v1", "Event", "events")
#: The platform's rules for PaymentServices (cluster-scoped; read, never written).
PLATFORM_POLICY = Resource(policy.API_VERSION, policy.KIND, policy.PLURAL, namespaced=False)

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
    # Optional APIs: the group/version is the one their builders emit (the one source of
    # truth); discovery asks the cluster for exactly these (see OPTIONAL_APIS).
    Resource(monitoring.API_VERSION, "ServiceMonitor", "servicemonitors",
             child=True, capability="prometheus_operator"),
    Resource(monitoring.API_VERSION, "PrometheusRule", "prometheusrules",
             child=True, capability="prometheus_operator"),
    Resource(secrets.ESO_API_VERSION, "ExternalSecret", "externalsecrets",
             child=True, capability="external_secrets"),
    Resource(secrets.ESO_API_VERSION, "SecretStore", "secretstores",
             child=True, capability="external_secrets"),
    Resource(secrets.CSI_API_VERSION, "SecretProviderClass", "secretproviderclasses",
             child=True, capability="secrets_store_csi"),
    # Every version the builder can emit, most preferred first (the one served is used).
    *(Resource(version, "KafkaTopic", "kafkatopics", child=True, capability="strimzi")
      for version in kafka.API_VERSIONS),
)


def _optional_apis() -> dict[str, tuple[str, ...]]:
    apis: dict[str, tuple[str, ...]] = {}
    for r in KNOWN:
        if r.capability is None:
            continue
        known = apis.setdefault(r.capability, ())
        if r.api_version not in known:
            apis[r.capability] = (*known, r.api_version)
    return apis


#: The group/versions each optional API (a Capabilities flag) may be served at, most
#: preferred first, such as ``{"external_secrets": ("external-secrets.io/v1",)}``: what
#: discovery asks the cluster for (the first served one counts).
OPTIONAL_APIS: Mapping[str, tuple[str, ...]] = _optional_apis()

#: Every kind the operator creates: watched for drift through child events.
CHILDREN = tuple(r for r in KNOWN if r.child)
#: Children every cluster serves.
CORE_CHILDREN = tuple(r for r in CHILDREN if r.capability is None)


def served(capabilities: Capabilities, resource: Resource) -> bool:
    """Whether the cluster serves ``resource`` at its version, given its capabilities."""
    if resource.capability is None:
        return True
    if not getattr(capabilities, resource.capability, False):
        return False
    if resource.capability == "strimzi":
        return resource.api_version == kafka.api_version(capabilities)
    return True


def children(capabilities: Capabilities) -> tuple[Resource, ...]:
    """Child kinds the cluster serves (each at the one version in use), given its capabilities."""
    return tuple(r for r in KNOWN if r.child and served(capabilities, r))


_BY_KIND = {(r.api_version, r.kind): r for r in KNOWN}


def of(manifest: Mapping[str, Any]) -> Resource:
    """The resource of a manifest; KeyError for a kind this operator does not manage."""
    return _BY_KIND[(manifest["apiVersion"], manifest["kind"])]


def by_kind(api_version: str, kind: str) -> Resource:
    return _BY_KIND[(api_version, kind)]
