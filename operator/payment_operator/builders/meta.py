"""Identity of every child: names, labels, selectors, owner references, canonical values.

Every child a builder emits carries the same metadata, made here and only here:

* ``metadata.labels`` are :func:`child_labels` and nothing else.  The CR's own labels are
  never copied (Argo CD label tracking would then claim, and prune, the children).
* exactly one ``ownerReference``: the PaymentService, as controller, set directly.
* the PaymentService's namespace.

The one exception is a child in another namespace (a KafkaTopic in the Strimzi cluster's
namespace, :func:`label_owned_meta`): an owner reference cannot cross namespaces, so it is
owned by labels naming the PaymentService's namespace and uid (:data:`LABEL_OWNER_UID`).

Selectors are chosen once and never change: :func:`selector_labels` picks every pod of the
service (stable and canary); a revision's Deployment adds the revision label to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from payment_operator.api.v1alpha1 import API_VERSION, KIND, PaymentService

#: ``app.kubernetes.io/name`` of every child and pod.
APP_NAME = "payment-service"
MANAGED_BY = "paydeck-operator"
PART_OF = "paydeck"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
#: Names the PaymentService a child belongs to (the reconciler prunes by it).
LABEL_PAYMENT_SERVICE = "paydeck.dev/paymentservice"
#: The :func:`~payment_operator.builders.workload.revision` of a pod's template (and of the
#: Deployment and migration Job of that revision).
LABEL_REVISION = "paydeck.dev/revision"
#: Owner of a child in another namespace (no owner reference can point there): the
#: PaymentService's uid and namespace; its name is :data:`LABEL_PAYMENT_SERVICE`.
LABEL_OWNER_UID = "paydeck.dev/owner-uid"
LABEL_OWNER_NAMESPACE = "paydeck.dev/owner-namespace"
#: Hash of the ConfigMap's data on the pod template: a config change rolls the pods.
ANNOTATION_CONFIG_HASH = "paydeck.dev/config-hash"

#: Ports of the payment runtime container.
HTTP_PORT = 8080
METRICS_PORT = 9090
HTTP_PORT_NAME = "http"
METRICS_PORT_NAME = "metrics"
CONTAINER_NAME = "payment-runtime"


@dataclass(frozen=True)
class Capabilities:
    """Which optional APIs the cluster serves; builders skip children of missing ones.

    Each flag stands for the group/version its builder module emits (``monitoring``,
    ``secrets``, ``kafka``: their ``*API_VERSION`` constants), which discovery asks for
    (``kube.resources.OPTIONAL_APIS``); Strimzi's KafkaTopic has two versions with the same
    spec, and ``strimzi_version`` says which one the builder emits.
    """

    prometheus_operator: bool = False
    external_secrets: bool = False
    secrets_store_csi: bool = False
    strimzi: bool = False
    #: The KafkaTopic version the cluster serves (``kafka.strimzi.io/<this>``), the first of
    #: ``kafka.VERSIONS`` discovery finds; meaningful while ``strimzi`` is set.
    strimzi_version: str = "v1"


@dataclass(frozen=True)
class Context:
    """What the builders need to know besides the PaymentService: the cluster around it."""

    capabilities: Capabilities = field(default_factory=Capabilities)
    #: Namespace of the ingress gateway allowed in by the NetworkPolicy.
    gateway_namespace: str = "ingress"
    #: Namespace of Prometheus, allowed to the metrics port when monitoring is set.
    monitoring_namespace: str = "monitoring"
    #: The namespaces the operator watches and is granted (empty: every namespace); a child
    #: in another namespace is built only where the operator can see it.
    watch_namespaces: tuple[str, ...] = ()

    def sees(self, namespace: str) -> bool:
        """Whether the operator watches (and may write in) ``namespace``."""
        return not self.watch_namespaces or namespace in self.watch_namespaces


def name(ps: PaymentService) -> str:
    """The PaymentService's name (every child is named after it)."""
    if not ps.metadata.name:
        raise ValueError("PaymentService has no metadata.name")
    return ps.metadata.name


def namespace(ps: PaymentService) -> str:
    """The PaymentService's namespace (every child lives in it)."""
    if not ps.metadata.namespace:
        raise ValueError("PaymentService has no metadata.namespace")
    return ps.metadata.namespace


def config_map_name(ps: PaymentService) -> str:
    """Name of the ConfigMap of non-secret settings."""
    return f"{name(ps)}-config"


def secrets_name(ps: PaymentService) -> str:
    """Name of the Secret the secret store binding syncs (one key per store object)."""
    return f"{name(ps)}-secrets"


def selector_labels(ps: PaymentService) -> dict[str, str]:
    """Labels that select every pod of this service, stable and canary alike."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: name(ps)}


def selector(ps: PaymentService) -> str:
    """:func:`selector_labels` as a label-selector string (for ``status.selector``)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(ps).items()))


def child_labels(ps: PaymentService) -> dict[str, str]:
    """The labels every child carries, and only these."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: name(ps),
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: PART_OF,
        LABEL_PAYMENT_SERVICE: name(ps),
    }


def owner_reference(ps: PaymentService) -> dict[str, Any]:
    """The one owner reference of every child: the PaymentService, as controller."""
    if not ps.metadata.uid:
        raise ValueError("PaymentService has no metadata.uid")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name(ps),
        "uid": ps.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    ps: PaymentService,
    child_name: str,
    *,
    annotations: Mapping[str, str] | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``metadata`` of a child: name, namespace, labels, owner, optional annotations.

    ``extra_labels`` are only for labels another controller requires to act on the child
    (Prometheus' selectors, Strimzi's cluster label); they never override the child labels.
    """
    labels = {**(extra_labels or {}), **child_labels(ps)}
    meta: dict[str, Any] = {
        "name": child_name,
        "namespace": namespace(ps),
        "labels": labels,
        "ownerReferences": [owner_reference(ps)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def owner_labels(ps: PaymentService) -> dict[str, str]:
    """The labels that own a child in another namespace: the PaymentService's namespace
    and uid (its name is in :func:`child_labels`)."""
    if not ps.metadata.uid:
        raise ValueError("PaymentService has no metadata.uid")
    return {LABEL_OWNER_NAMESPACE: namespace(ps), LABEL_OWNER_UID: ps.metadata.uid}


def label_owned_meta(
    ps: PaymentService,
    child_name: str,
    child_namespace: str,
    *,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``metadata`` of a child in another namespace: owned by :func:`owner_labels`, with no
    owner reference (one cannot cross namespaces: the garbage collector would delete it)."""
    return {
        "name": child_name,
        "namespace": child_namespace,
        "labels": {**(extra_labels or {}), **child_labels(ps), **owner_labels(ps)},
    }


def label_owner_uid(obj: Mapping[str, Any]) -> str | None:
    """The PaymentService uid a label-owned child names (:data:`LABEL_OWNER_UID`), if any."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    uid = labels.get(LABEL_OWNER_UID)
    return str(uid) if uid else None


def short_hash(value: Any, length: int = 10) -> str:
    """A short, stable hex digest of a JSON-able value (key order does not matter)."""
    payload = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:length]
