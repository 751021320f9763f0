"""Reconcile one PaymentService from current state: read, build, apply, prune, observe, publish.

Every trigger (create, update, resume, the drift timer, a change to a child, a user command, a
requeue) runs the same :func:`reconcile`.  It is synchronous (the official client is) and runs
in Kopf's thread pool.  Triggers for one object are coalesced (:mod:`payment_operator.coalesce`)
and each pass re-reads the object while it holds the object's lock, so it never acts on a stale
copy.  Which Events a pass posts is decided in :mod:`payment_operator.events`; how API failures
are named, in :mod:`payment_operator.kube.errors`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pydantic

from payment_operator import api, builders, conditions, events, observability
from payment_operator.coalesce import Coalescer
from payment_operator.events import Event
from payment_operator.kube import apply, resources, status
from payment_operator.kube.client import Kube, KubeError, Obj
from payment_operator.kube.errors import failure_of


@dataclass
class Outcome:
    """What a reconcile pass did and found (``obj`` is the object it acted on).

    ``requeue_after``: seconds until the object must be reconciled again even if nothing
    changes (the end of a timed pause, say); None when only a change should trigger a pass.
    ``coalesced``: this caller ran no pass, another one (running or about to) does its work.
    """

    events: list[Event] = field(default_factory=list)
    failure: conditions.Failure | None = None
    obj: Obj | None = None
    requeue_after: float | None = None
    coalesced: bool = False


def reconcile(
    kube: Kube,
    coalescer: Coalescer[Outcome],
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

    With ``wait=False`` a caller that finds a pass running only marks the object pending and
    returns an outcome with ``coalesced=True``; the running pass goes round again.  When a
    caller runs several passes, the outcome carries every pass's Events and the last pass's
    failure, object and requeue time.
    """

    def one_pass(prune: bool) -> Outcome:
        return _measured_pass(kube, namespace, name, ctx, trigger, prune, now)

    outcomes = coalescer.run((namespace, name), one_pass, prune=prune_children, wait=wait)
    if not outcomes:
        return Outcome(coalesced=True)
    return replace(outcomes[-1], events=[e for o in outcomes for e in o.events])


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
    except KubeError as err:
        if err.status == 403 and "being terminated" in err.message:
            return outcome  # the namespace is going away, and this object with it
        outcome.failure = failure_of(err)
        outcome.events.extend(events.new_failure(obj, outcome.failure))
        if err.status == 0:
            raise  # nothing to write status to; Kopf retries with backoff
    except apply.FightingError as err:
        outcome.failure = conditions.Failure("FightingAnotherManager", str(err), retryable=False)
        outcome.events.extend(events.new_failure(obj, outcome.failure))
    outcome.events.extend(events.writes(result))
    observability.count_writes(
        created=len(result.created), updated=len(result.updated), pruned=len(result.pruned)
    )

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

    written, latest = status.write(kube, obj, compute)
    if written:
        outcome.events.extend(
            events.phase_change(obj.get("status") or {}, latest.get("status") or {})
        )
