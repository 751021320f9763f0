"""Pure builders: a PaymentService (and what the cluster serves) in, desired children out.

Nothing here does I/O or imports Kopf or a Kubernetes client.  :func:`build_all` returns
every child the operator should apply, as plain JSON-able dicts in a deterministic order,
already in the canonical form the API server returns (ints for ports, no empty maps or
lists, explicit ``protocol: TCP``), so that the reconciler can compare them with live
objects field by field.  Modules by role: :mod:`.meta` (identity of children),
:mod:`.workload`, :mod:`.network`, :mod:`.scaling`, :mod:`.monitoring`, :mod:`.secrets`,
:mod:`.kafka`.
"""

from __future__ import annotations

from typing import Any

from payment_operator.api.v1alpha1 import PaymentService
from payment_operator.builders import kafka, meta, monitoring, network, scaling, secrets, workload
from payment_operator.builders.meta import (
    Capabilities,
    Context,
    child_labels,
    config_map_name,
    owner_reference,
    secrets_name,
    selector,
    selector_labels,
    stable_deployment_name,
)
from payment_operator.builders.workload import revision


def build_all(ps: PaymentService, ctx: Context) -> list[dict[str, Any]]:
    """Every desired child of ``ps``, in a deterministic order.

    Order: identity and settings first (ServiceAccount, ConfigMap), then the secret-store
    bindings and Kafka topics the pods depend on, the Deployment, and what sits around it.
    """
    optional = [
        network.network_policy(ps, ctx),
        network.ingress(ps),
        scaling.horizontal_pod_autoscaler(ps),
        monitoring.service_monitor(ps, ctx),
        monitoring.prometheus_rule(ps, ctx),
    ]
    return [
        workload.service_account(ps),
        workload.config_map(ps),
        *secrets.secret_bindings(ps, ctx),
        *kafka.kafka_topics(ps, ctx),
        workload.deployment(ps),
        network.service(ps),
        scaling.pod_disruption_budget(ps),
        *(child for child in optional if child is not None),
    ]


__all__ = [
    "Capabilities",
    "Context",
    "build_all",
    "child_labels",
    "config_map_name",
    "meta",
    "owner_reference",
    "revision",
    "secrets_name",
    "selector",
    "selector_labels",
    "stable_deployment_name",
]
