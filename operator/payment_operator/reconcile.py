"""Reconcile one PaymentService from current state: read, build, apply, prune, observe, status.

Every trigger (create, update, resume, the drift timer, a change to a child) runs the same
:func:`reconcile`.  It is synchronous (the official client is) and runs in Kopf's thread
pool.  Triggers for one object are coalesced: while a pass runs, further triggers only mark
the object dirty and return, and the running pass goes round once more — so a burst of child
events costs one extra pass, not one blocked thread each.  Each pass re-reads the object
inside the per-object lock, so it never acts on a stale copy.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic

from payment_operator import api, builders, conditions, observability
from payment_operator.kube import apply, resources, status
from payment_operator.kube.client import Kube, KubeError, Obj


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the PaymentService."""

    type: str
    reason: str
    message: str


@dataclass
class Outcome:
    """What a reconcile pass did and found (``obj`` is the object it acted on)."""

    events: list[Event] = field(default_factory=list)
    failure: conditions.Failure | None = None
    obj: Obj | None = None
    coalesced: bool = False


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: bool = False
    prune: bool = False


_slots: dict[tuple[str, str], _Slot] = {}
_guard = threading.Lock()


def _slot(namespace: str, name: str) -> _Slot:
    with _guard:
        return _slots.setdefault((namespace, name), _Slot())


def forget(namespace: str, name: str) -> None:
    """Drop the bookkeeping of a deleted object (unless a pass still runs for it)."""
    with _guard:
        slot = _slots.get((namespace, name))
        if slot is not None and not slot.lock.locked():
            del _slots[(namespace, name)]


# Failures that will not go away by retrying the same request.  They still get retried with
# back-off (a quota is raised, RBAC is fixed), but the status says Stalled meanwhile.
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
    namespace: str,
    name: str,
    ctx: builders.Context,
    *,
    trigger: str,
    prune_children: bool,
    wait: bool = True,
    now: datetime | None = None,
) -> Outcome:
    """Reconcile one PaymentService, coalescing with a pass already running for it.

    With ``wait=False`` a caller that finds a pass running only marks the object dirty and
    returns an outcome with ``coalesced=True``; the running pass goes round again.
    """
    slot = _slot(namespace, name)
    with _guard:
        slot.pending = True
        slot.prune = slot.prune or prune_children
    outcome = Outcome(coalesced=True)
    events: list[Event] = []  # every pass's Events; the failure and object are the last pass's
    while slot.lock.acquire(blocking=wait):
        try:
            with _guard:
                if not slot.pending:
                    break
                slot.pending = False
                prune, slot.prune = slot.prune, False
            outcome = _measured_pass(kube, namespace, name, ctx, trigger, prune, now)
            events.extend(outcome.events)
        finally:
            slot.lock.release()
        wait = False  # go round again only for triggers that arrived during this pass
    outcome.events = events
    return outcome


def _measured_pass(
    kube: Kube, namespace: str, name: str, ctx: builders.Context, trigger: str, prune: bool,
    now: datetime | None,
) -> Outcome:
    started = time.monotonic()
    try:
        obj = kube.get(resources.PAYMENT_SERVICE, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return Outcome(obj=obj)
        outcome = _reconcile(kube, obj, ctx, prune, now or datetime.now(UTC))
    except KubeError as err:
        observability.ERRORS.labels(failure_of(err).reason).inc()
        observability.RECONCILES.labels(trigger, "error").inc()
        raise
    finally:
        observability.DURATION.labels(trigger).observe(time.monotonic() - started)
    observability.RECONCILES.labels(trigger, "ok" if outcome.failure is None else "failed").inc()
    if outcome.failure is not None:
        observability.ERRORS.labels(outcome.failure.reason).inc()
    return outcome


def _reconcile(
    kube: Kube, obj: Obj, ctx: builders.Context, prune_children: bool, now: datetime
) -> Outcome:
    outcome = Outcome(obj=obj)
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
            wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
            kinds = resources.children(ctx.capabilities)
            apply.prune(kube, namespace, meta["uid"], builders.selector(ps), kinds, wanted, result)
        result.raise_for_conflicts()
    except KubeError as err:
        if err.status == 403 and "being terminated" in err.message:
            return outcome  # the namespace is going away, and this object with it
        outcome.failure = failure_of(err)
        if _is_new_failure(obj, outcome.failure):
            outcome.events.append(Event("Warning", outcome.failure.reason, outcome.failure.message))
        if err.status == 0:
            raise  # nothing to write status to; Kopf retries with backoff
    except apply.FightingError as err:
        outcome.failure = conditions.Failure("FightingAnotherManager", str(err), retryable=False)
        if _is_new_failure(obj, outcome.failure):
            outcome.events.append(Event("Warning", outcome.failure.reason, outcome.failure.message))
    except apply.ConflictingObjectError as err:
        outcome.failure = conditions.Failure("ConflictingObject", str(err), retryable=False)
        if _is_new_failure(obj, outcome.failure):
            outcome.events.append(Event("Warning", outcome.failure.reason, outcome.failure.message))
    _record_writes(result, outcome)

    deployment_name = builders.stable_deployment_name(ps)
    deployment = result.live.get(("Deployment", deployment_name))
    if deployment is None and outcome.failure is not None:
        try:
            deployment = kube.get(resources.by_kind("apps/v1", "Deployment"), namespace,
                                  deployment_name)
        except KubeError:
            deployment = None  # publish the failure without a workload view
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


def _record_writes(result: apply.ApplyResult, outcome: Outcome) -> None:
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
    generation = int(obj["metadata"].get("generation", 1))

    def compute(current: Obj) -> dict[str, Any]:
        if int(current["metadata"].get("generation", 1)) != generation:
            return {}  # the spec moved on while we worked: the next pass reports it
        stored = current.get("status") or {}
        if observation is not None:
            return conditions.desired_status(observation, stored, now)
        failure = outcome.failure or conditions.Failure("Unknown", "unknown", False)
        return conditions.failed_status(generation, failure, stored, now)

    before = (obj.get("status") or {}).get("phase")
    written, latest = status.write(kube, obj, compute)
    after = (latest.get("status") or {}).get("phase")
    if written and after != before:
        kind = "Warning" if after == "Degraded" else "Normal"
        message = (latest.get("status") or {}).get("message", "")
        outcome.events.append(Event(kind, f"Phase{after}", f"phase {before} -> {after}: {message}"))
