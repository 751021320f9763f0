"""How many pods run and how many may go: HorizontalPodAutoscaler and PodDisruptionBudget.

The autoscaler targets the PaymentService itself (its scale subresource), never a
Deployment: the operator then splits the total between the stable and canary tracks.
"""

from __future__ import annotations

from typing import Any

from payment_operator.api.v1alpha1 import API_VERSION, KIND, PaymentService
from payment_operator.builders import meta

#: The budget when the spec sets none: one pod at a time may be disrupted.  It never
#: blocks a node drain (even a single replica may go) yet keeps drains from taking
#: several pods of the service at once.
DEFAULT_MAX_UNAVAILABLE = 1


def _utilization(resource: str, percent: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {
            "name": resource,
            "target": {"type": "Utilization", "averageUtilization": percent},
        },
    }


def horizontal_pod_autoscaler(ps: PaymentService) -> dict[str, Any] | None:
    """HPA ``<name>`` (autoscaling/v2) on the PaymentService, when spec.autoscaling is set."""
    spec = ps.spec.autoscaling
    if spec is None:
        return None
    metrics = [_utilization("cpu", spec.target_cpu_utilization_percentage)]
    if spec.target_memory_utilization_percentage is not None:
        metrics.append(_utilization("memory", spec.target_memory_utilization_percentage))
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta.object_meta(ps, meta.name(ps)),
        "spec": {
            "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": meta.name(ps)},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": metrics,
        },
    }


def pod_disruption_budget(ps: PaymentService) -> dict[str, Any]:
    """PDB ``<name>`` over every pod of the service: spec's limit, or maxUnavailable 1.

    Unhealthy pods may always be evicted, so a crash-looping revision never blocks a drain.
    """
    spec = ps.spec.pod_disruption_budget
    body: dict[str, Any] = {"selector": {"matchLabels": meta.selector_labels(ps)}}
    if spec is not None and spec.min_available is not None:
        body["minAvailable"] = spec.min_available
    elif spec is not None and spec.max_unavailable is not None:
        body["maxUnavailable"] = spec.max_unavailable
    else:
        body["maxUnavailable"] = DEFAULT_MAX_UNAVAILABLE
    body["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta.object_meta(ps, meta.name(ps)),
        "spec": body,
    }
