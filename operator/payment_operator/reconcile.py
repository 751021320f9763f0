"""Reconcile one PaymentService from current state: parse, build, apply, prune, observe, status.

Every trigger (create, update, resume, the drift timer, a change to a child) runs the same
:func:`reconcile`.  It is synchronous (the official client is) and runs in Kopf's thread
pool; a per-object lock keeps two triggers of the same object from interleaving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic

from payment_operator import api, builders, conditions, observability
from payment_operator.kube import apply, resources, status
from payment_operator.kube.client import Kube, KubeError, Obj

#: Kinds the operator may create, and so may have to prune.
PRUNABLE = tuple(
    resources.by_kind(api_version, kind)
    for api_version, kind in (
        ("v1", "ServiceAccount"),
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("networking.k8s.io/v1", "Ingress"),
    )
)
OPTIONAL_PRUNABLE = {
    "prometheus_operator": (
        resources.by_kind("monitoring.coreos.com/v1", "ServiceMonitor"),
        resources.by_kind("monitoring.coreos.com/v1", "PrometheusRule"),
    ),
    "external_secrets": (
        resources.by_kind("external-secrets.io/v1beta1", "ExternalSecret"),
        resources.by_kind("external-secrets.io/v1beta1", "SecretStore"),
    ),
    "secrets_store_csi": (
        resources.by_kind("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"),
    ),
    "strimzi": (resources.by_kind("kafka.strimzi.io/v1beta2", "KafkaTopic"),),
}


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the PaymentService."""

    type: str
    reason: str
    message: str


@dataclass
class Outcome:
    """What a reconcile pass did and found."""

    events: list[Event] = field(default_factory=list)
    writes: int = 0
    status_written: bool = False
    failure: conditions.Failure | None = None
    ready: bool = False


_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


def forget(namespace: str, name: str) -> None:
    """Drop the per-object lock of a deleted object."""
    with _locks_guard:
        _locks.pop((namespace, name), None)


_NON_RETRYABLE = {400: "InvalidChild", 403: "Forbidden", 404: "NotFound", 422: "InvalidChild"}


def failure_of(err: KubeError) -> conditions.Failure:
    """Name an API failure for conditions and Events."""
    if err.status == 0:
        reason = "APIUnreachable"
    elif err.status in _NON_RETRYABLE:
        reason = _NON_RETRYABLE[err.status]
    elif err.status == 409:
        reason = "Conflict"
    elif err.status == 429:
        reason = "Throttled"
    else:
        reason = "APIServerError"
    return conditions.Failure(reason, str(err)[:1024], err.retryable)


def reconcile(
    kube: Kube,
    body: Mapping[str, Any],
    ctx: builders.Context,
    *,
    trigger: str,
    prune_children: bool,
    now: datetime | None = None,
) -> Outcome:
    """One reconcile pass over one PaymentService (serialised per object)."""
    meta = body["metadata"]
    started = time.monotonic()
    with _lock(meta["namespace"], meta["name"]):
        try:
            outcome = _reconcile(kube, dict(body), ctx, prune_children, now or datetime.now(UTC))
        except KubeError as err:
            observability.ERRORS.labels(failure_of(err).reason).inc()
            observability.RECONCILES.labels(trigger, "error").inc()
            raise
        finally:
            observability.DURATION.labels(trigger).observe(time.monotonic() - started)
    result = "ok" if outcome.failure is None else "failed"
    observability.RECONCILES.labels(trigger, result).inc()
    if outcome.failure is not None:
        observability.ERRORS.labels(outcome.failure.reason).inc()
    return outcome


def _reconcile(
    kube: Kube, obj: Obj, ctx: builders.Context, prune_children: bool, now: datetime
) -> Outcome:
    outcome = Outcome()
    meta = obj["metadata"]
    namespace = meta["namespace"]
    generation = int(meta.get("generation", 1))
    try:
        ps = api.parse(obj)
    except pydantic.ValidationError as err:
        # The CRD schema should make this impossible; if it happens, say so and stop.
        text = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5]
        )
        outcome.failure = conditions.Failure("InvalidSpec", text, retryable=False)
        outcome.events.append(Event("Warning", "InvalidSpec", text))
        _publish(kube, obj, None, outcome, now)
        return outcome

    desired = builders.build_all(ps, ctx)
    result = apply.ApplyResult()
    try:
        result = apply.apply_all(kube, desired)
        if prune_children:
            kinds = list(PRUNABLE)
            for flag, extra in OPTIONAL_PRUNABLE.items():
                if getattr(ctx.capabilities, flag):
                    kinds.extend(extra)
            wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
            apply.prune(kube, namespace, meta["uid"], builders.selector(ps), kinds, wanted, result)
    except KubeError as err:
        if err.status == 403 and "being terminated" in err.message:
            return outcome  # the namespace is going away, and this object with it
        outcome.failure = failure_of(err)
        if _is_new_failure(obj, outcome.failure):
            outcome.events.append(Event("Warning", outcome.failure.reason, outcome.failure.message))
        if err.status == 0:
            raise  # nothing to write status to; Kopf retries with backoff
    for ref in result.created:
        outcome.events.append(Event("Normal", "Created", f"created {ref}"))
    for ref in result.updated:
        outcome.events.append(Event("Normal", "Updated", f"updated {ref} (drifted or changed)"))
    for ref in result.pruned:
        outcome.events.append(Event("Normal", "Pruned", f"deleted {ref}: no longer wanted"))
    for action, refs in (("create", result.created), ("update", result.updated),
                         ("prune", result.pruned)):
        if refs:
            observability.WRITES.labels(action).inc(len(refs))
    outcome.writes = result.writes

    deployment = result.live.get(("Deployment", builders.stable_deployment_name(ps)))
    if deployment is None and outcome.failure is not None:
        deployment = kube.get(
            resources.by_kind("apps/v1", "Deployment"), namespace,
            builders.stable_deployment_name(ps),
        )
    observation = conditions.Observation(
        generation=generation,
        desired_replicas=ps.spec.replicas,
        selector=builders.selector(ps),
        revision=builders.revision(ps),
        image=ps.spec.image,
        workload=conditions.WorkloadState.from_deployment(deployment),
        failure=outcome.failure,
    )
    _publish(kube, obj, observation, outcome, now)
    return outcome


def _is_new_failure(obj: Obj, failure: conditions.Failure) -> bool:
    """Whether this failure is not already reported (one Event per failure, not per retry)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Degraded":
            return not (
                cond.get("status") == "True"
                and cond.get("reason") == failure.reason
                and cond.get("message") == failure.message
            )
    return True


def _publish(
    kube: Kube,
    obj: Obj,
    observation: conditions.Observation | None,
    outcome: Outcome,
    now: datetime,
) -> None:
    before = (obj.get("status") or {}).get("phase")
    if observation is None:
        generation = int(obj["metadata"].get("generation", 1))
        failure = outcome.failure or conditions.Failure("Unknown", "unknown", False)

        def compute(current: Obj) -> dict[str, Any]:
            conds = conditions.keep_transition_times(
                [
                    {"type": "Ready", "status": "False", "observedGeneration": generation,
                     "reason": failure.reason, "message": failure.message},
                    {"type": "Stalled", "status": "True", "observedGeneration": generation,
                     "reason": failure.reason, "message": failure.message},
                ],
                (current.get("status") or {}).get("conditions") or [],
                now,
            )
            return {"observedGeneration": generation, "phase": "Degraded",
                    "message": failure.message, "conditions": conds}
    else:
        def compute(current: Obj) -> dict[str, Any]:
            return conditions.desired_status(observation, current.get("status") or {}, now)

    written, latest = status.write(kube, obj, compute)
    outcome.status_written = written
    after = (latest.get("status") or {}).get("phase")
    outcome.ready = after == "Healthy"
    if written and after != before:
        kind = "Warning" if after == "Degraded" else "Normal"
        message = (latest.get("status") or {}).get("message", "")
        outcome.events.append(Event(kind, f"Phase{after}", f"phase {before} -> {after}: {message}"))
