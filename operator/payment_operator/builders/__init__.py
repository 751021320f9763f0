"""Pure builders: a PaymentService (and what the cluster serves) in, desired children out.

Nothing here does I/O or imports Kopf or a Kubernetes client.  :func:`build_all` returns
every child the operator should apply, as plain JSON-able dicts in a deterministic order,
already in the canonical form the API server returns (ints for ports, no empty maps or
lists, explicit ``protocol: TCP``), so that the reconciler can compare them with live
objects field by field.  Modules by role: :mod:`.meta` (identity of children),
:mod:`.workload`, :mod:`.migrations`, :mod:`.network`, :mod:`.scaling`, :mod:`.monitoring`,
:mod:`.secrets`, :mod:`.kafka`, :mod:`.dashboard`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from payment_operator.api.v1alpha1 import PaymentService
from payment_operator.builders import (
    dashboard,
    kafka,
    meta,
    migrations,
    monitoring,
    network,
    scaling,
    secrets,
    workload,
)
from payment_operator.builders.meta import (
    Capabilities,
    Context,
    child_labels,
    config_map_name,
    owner_reference,
    secrets_name,
    selector,
    selector_labels,
)
from payment_operator.builders.workload import revision


@dataclass(frozen=True)
class Workloads:
    """The workload part of a rollout plan: which revisions run with how many pods.

    ``templates`` holds the pod templates of older revisions as their Deployments have
    them (the spec only describes its own revision); ``migration`` asks for the Job of the
    spec's revision.
    """

    replicas: Mapping[str, int] = field(default_factory=dict)
    templates: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    migration: bool = False


def deployments(ps: PaymentService, plan: Workloads) -> list[dict[str, Any]]:
    """One Deployment per planned revision, in revision order."""
    current = revision(ps)
    out = []
    for rev, count in sorted(plan.replicas.items()):
        template = None if rev == current else plan.templates.get(rev)
        if rev != current and template is None:
            continue  # an old revision whose Deployment is gone: nothing to keep
        out.append(workload.deployment(ps, rev, count, template))
    return out


def supporting(ps: PaymentService, ctx: Context) -> list[dict[str, Any]]:
    """Every child but the workloads, in a deterministic order.

    Identity and settings first (ServiceAccount, ConfigMap), then the secret-store bindings
    and Kafka topics the pods depend on, then what sits around the pods.
    """
    optional = [
        network.network_policy(ps, ctx),
        network.ingress(ps),
        scaling.horizontal_pod_autoscaler(ps),
        monitoring.service_monitor(ps, ctx),
        monitoring.prometheus_rule(ps, ctx),
        dashboard.dashboard_config_map(ps),
    ]
    return [
        workload.service_account(ps),
        workload.config_map(ps),
        *secrets.secret_bindings(ps, ctx),
        *kafka.kafka_topics(ps, ctx),
        network.service(ps),
        scaling.pod_disruption_budget(ps),
        *(child for child in optional if child is not None),
    ]


def workloads(ps: PaymentService, plan: Workloads) -> list[dict[str, Any]]:
    """The migration Job (when planned), then one Deployment per planned revision."""
    return [*([migrations.migration_job(ps)] if plan.migration else []), *deployments(ps, plan)]


def build_all(
    ps: PaymentService, ctx: Context, plan: Workloads | None = None
) -> list[dict[str, Any]]:
    """Every desired child of ``ps``: :func:`supporting`, then :func:`workloads`.

    Without a plan the spec's revision runs ``spec.replicas`` pods and no Job.
    """
    if plan is None:
        plan = Workloads(replicas={revision(ps): ps.spec.replicas})
    return supporting(ps, ctx) + workloads(ps, plan)


__all__ = [
    "Capabilities",
    "Context",
    "Workloads",
    "build_all",
    "child_labels",
    "config_map_name",
    "deployments",
    "meta",
    "migrations",
    "owner_reference",
    "revision",
    "secrets_name",
    "selector",
    "selector_labels",
    "supporting",
    "workloads",
]
