"""Reconcile one PaymentService: observe -> decide -> build -> apply -> publish.

Every trigger (create, update, resume, the drift timer, a change to a child, a user command, a
requeue) runs the same :func:`reconcile`.  It is synchronous (the official client is) and runs
in Kopf's thread pool.  Triggers for one object are coalesced (:mod:`payment_operator.coalesce`)
and each pass reads the object while it holds the object's lock — from memory, as new as its
watch's last event or this process's last status write (:mod:`payment_operator.kube.parents`),
else with a GET — and writes status only on the resourceVersion it read.  Which Events a
pass posts is decided in :mod:`payment_operator.events`; how API failures are named, in
:mod:`payment_operator.kube.errors`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pydantic

from payment_operator import api, builders, conditions, events, observability, policy, providers
from payment_operator.coalesce import Coalescer
from payment_operator.events import Event
from payment_operator.kube import apply, observe, record, resources, status
from payment_operator.kube.cache import ChildCache
from payment_operator.kube.client import Kube, KubeError, Obj
from payment_operator.kube.errors import failure_of
from payment_operator.kube.parents import ParentCache
from payment_operator.rollout import engine, split, state, topics
from payment_operator.topics import AdminClients


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
    #: The object as its status write answered (None: the pass wrote no status).
    written: Obj | None = None


def reconcile(
    kube: Kube,
    coalescer: Coalescer[Outcome],
    namespace: str,
    name: str,
    ctx: builders.Context,
    *,
    kafka_admins: AdminClients,
    trigger: str,
    prune_children: bool,
    wait: bool = True,
    now: datetime | None = None,
    platform_policy: str = "",
    cache: ChildCache | None = None,
    parents: ParentCache | None = None,
) -> Outcome:
    """Reconcile one PaymentService, coalescing with a pass already running for it.

    With ``wait=False`` a caller that finds a pass running only marks the object pending and
    returns an outcome with ``coalesced=True``; the running pass goes round again.  When a
    caller runs several passes, the outcome carries every pass's Events and the last pass's
    failure, object and requeue time.  ``kafka_admins`` are the process's Kafka admin
    clients (topicProvisioner admin).  With ``platform_policy`` (the name of a
    PaymentServicePolicy) each pass checks the spec against it before it applies anything.
    With ``cache`` (the children the watches saw) passes read children from it when it
    holds them, instead of a GET each; with ``parents`` (the PaymentServices seen) a pass
    reads its object from there when held, and records the status it wrote.
    """

    def one_pass(prune: bool) -> Outcome:
        return _measured_pass(kube, namespace, name, ctx, kafka_admins, trigger, prune, now,
                              platform_policy, cache, parents)

    outcomes = coalescer.run((namespace, name), one_pass, prune=prune_children, wait=wait)
    if not outcomes:
        return Outcome(coalesced=True)
    return replace(outcomes[-1], events=[e for o in outcomes for e in o.events])


def topic_namespaces(ctx: builders.Context) -> tuple[str | None, ...]:
    """Where label-owned KafkaTopics may be: each watched namespace, or all (None)."""
    return ctx.watch_namespaces or (None,)


def _kafka_topic_kinds(ctx: builders.Context) -> tuple[resources.Resource, ...]:
    return tuple(r for r in resources.children(ctx.capabilities) if r.kind == "KafkaTopic")


def delete_topics(
    kafka_admins: AdminClients, coalescer: Coalescer[Outcome], obj: Mapping[str, Any],
    kube: Kube | None = None, ctx: builders.Context | None = None,
) -> Outcome:
    """A PaymentService is being deleted: delete its Kafka topics if its spec says so
    (topicDeletionPolicy Delete: with topicProvisioner admin through the admin API, with
    strimzi its KafkaTopics in other namespaces, owned by label); with Retain the
    label-owned KafkaTopics stay, handed over (an Event names them); otherwise nothing.
    KafkaTopics in the PaymentService's own namespace go with it (garbage collection).

    Runs under the object's lock, so a pass that started before the deletion finishes first
    (passes on an object being deleted touch nothing).  A topic already gone counts as
    deleted; when the cluster does not answer or refuses, the outcome carries a retryable
    failure.
    """
    meta = obj["metadata"]
    try:
        kafka = api.parse(obj).spec.kafka
    except pydantic.ValidationError:
        return Outcome()
    released = (_release_kafka_topics(kube, coalescer, obj, ctx)
                if kube is not None and ctx is not None else None)
    if (kafka is None or kafka.topic_provisioner != "admin" or not kafka.topics
            or kafka.topic_deletion_policy != "Delete"):
        return released or Outcome()
    names = [t.name for t in kafka.topics]

    def work(_prune: bool) -> Outcome:
        outcome = Outcome()
        result = kafka_admins.delete(kafka.bootstrap_servers, names)
        if result.ok:
            outcome.events.append(Event("Normal", "KafkaTopicsDeleted",
                                        f"topicDeletionPolicy Delete: deleted "
                                        f"{', '.join(names)} on {result.bootstrap}"))
        else:
            why = result.unreachable or "; ".join(result.failures)
            outcome.failure = conditions.Failure(
                "KafkaTopicsNotDeleted", f"deleting {', '.join(names)} on {result.bootstrap}: "
                f"{why}", retryable=True)
            outcome.events.append(Event("Warning", outcome.failure.reason,
                                        outcome.failure.message))
        return outcome

    outcome = coalescer.run((meta["namespace"], meta["name"]), work, prune=False, wait=True)[-1]
    if released is not None:  # KafkaTopics left from an earlier strimzi spec, say
        outcome.events[:0] = released.events
        outcome.failure = outcome.failure or released.failure
    return outcome


def _release_kafka_topics(
    kube: Kube, coalescer: Coalescer[Outcome], obj: Mapping[str, Any], ctx: builders.Context
) -> Outcome | None:
    """The label-owned KafkaTopics of a PaymentService being deleted: deleted with
    topicDeletionPolicy Delete, left (handed over) with Retain.  None when it has none (with
    no topics in its spec, or no KafkaTopic API, it has nothing to look for)."""
    meta = obj["metadata"]
    kinds = _kafka_topic_kinds(ctx)
    if not kinds:
        return None
    kafka = api.parse(obj).spec.kafka
    delete = kafka is not None and kafka.topic_deletion_policy == "Delete"

    def work(_prune: bool) -> Outcome:
        outcome = Outcome()
        selector = f"{builders.meta.LABEL_OWNER_UID}={meta['uid']}"
        found = [(r, o) for r in kinds for ns in topic_namespaces(ctx)
                 for o in kube.list_objects(r, ns, selector)
                 if not o["metadata"].get("ownerReferences")
                 and apply.owner_uid(o) == meta["uid"]]
        names = sorted(f"{o['metadata']['namespace']}/{o['metadata']['name']}" for _, o in found)
        if not names:
            return outcome
        if delete:
            for resource, o in found:
                kube.delete(resource, o["metadata"]["namespace"], o["metadata"]["name"],
                            o["metadata"]["uid"])
            outcome.events.append(Event("Normal", "KafkaTopicsDeleted",
                                        f"topicDeletionPolicy Delete: deleted the KafkaTopics "
                                        f"{', '.join(names)}"))
        else:
            outcome.events.append(Event("Normal", "KafkaTopicsRetained",
                                        f"topicDeletionPolicy Retain: the KafkaTopics "
                                        f"{', '.join(names)} stay, handed over to their "
                                        "namespace (no PaymentService manages them now)"))
        return outcome

    try:
        return coalescer.run((meta["namespace"], meta["name"]), work, prune=False, wait=True)[-1]
    except KubeError as err:
        failure = conditions.Failure("KafkaTopicsNotDeleted",
                                     f"KafkaTopics of this PaymentService: {err}", retryable=True)
        return Outcome(failure=failure, events=[Event("Warning", failure.reason, failure.message)])


def _measured_pass(
    kube: Kube, namespace: str, name: str, ctx: builders.Context, kafka_admins: AdminClients,
    trigger: str, prune: bool, now: datetime | None, platform_policy: str = "",
    cache: ChildCache | None = None, parents: ParentCache | None = None,
) -> Outcome:
    started = time.monotonic()
    try:
        obj = parents.get(namespace, name) if parents is not None else None
        if obj is None:
            obj = kube.get(resources.PAYMENT_SERVICE, namespace, name)
            if parents is not None and obj is not None:
                parents.offer(obj)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return Outcome(obj=obj)
        outcome = _reconcile(kube, obj, ctx, kafka_admins, prune, now or datetime.now(UTC),
                             platform_policy, cache)
        if parents is not None and outcome.written is not None:
            parents.offer(outcome.written)  # the status this pass wrote
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


def scale_downs_first(
    workloads: list[dict[str, Any]], replicas: Mapping[str, int]
) -> list[dict[str, Any]]:
    """The workloads in the order they may be written: first each Deployment that gets fewer
    replicas than it has (``replicas``, by revision), then the rest as given (pure). The
    canary's surge room comes from the stable side's scale-down (``split.advance``): written
    first, it holds the surge budget between the two writes, and a pass that fails at it
    never writes the scale-up."""
    def down(manifest: dict[str, Any]) -> bool:
        if manifest["kind"] != "Deployment":
            return False
        rev = manifest["metadata"]["labels"].get(builders.meta.LABEL_REVISION)
        wanted = manifest["spec"].get("replicas")  # none: the autoscaler's
        return rev in replicas and wanted is not None and wanted < replicas[rev]

    return sorted(workloads, key=lambda m: not down(m))  # stable: the rest keep their order


class PolicyRefusalError(Exception):
    """The platform policy refuses the spec, or cannot be read: nothing may be applied."""

    def __init__(self, failure: conditions.Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def check_platform_policy(kube: Kube, ps: api.PaymentService, name: str) -> None:
    """Raise :class:`PolicyRefusalError` unless the PaymentServicePolicy ``name`` allows ``ps``.

    A missing policy refuses everything, as the admission policy does (its params not found).
    """
    live = kube.get(resources.PLATFORM_POLICY, None, name)
    if live is None:
        raise PolicyRefusalError(conditions.Failure(
            "PlatformPolicyMissing",
            f"the PaymentServicePolicy {name} does not exist: nothing is applied without it",
            retryable=True))
    found = policy.violations(ps, policy.PlatformRules.from_spec(live.get("spec") or {}))
    if found:
        raise PolicyRefusalError(conditions.Failure(
            "PolicyViolation", "; ".join(found)[:1024], retryable=False))


def _prune_scope(obj: Obj, asked: bool, dropped: AbstractSet[str]) -> str | None:
    """Which children this pass lists to delete the unwanted ones: ``"all"`` when asked
    (create, update, resume) of an object some pass has reconciled before; ``"revisions"``
    (Deployments and Jobs only) when a revision it no longer runs exists but it was not asked
    — a spec's other children changed only with the spec, whose own pass pruned them; None
    otherwise. Before its first status an object has no child a pass did not want: its first
    pass skips a LIST of every kind of child, none of which could find anything to delete (a
    pass that failed wrote its status, so its retry prunes; a crash before a first status
    leaves a child of a spec edited meanwhile until the next prune)."""
    if asked and _reconciled_before(obj):
        return "all"
    return "revisions" if dropped else None


def _reconciled_before(obj: Obj) -> bool:
    """Whether a pass has written this object's status: before that, it has no children
    but what its first pass creates (that pass neither GETs nor prunes what cannot exist)."""
    return (obj.get("status") or {}).get("observedGeneration") is not None


def _reconcile(
    kube: Kube, obj: Obj, ctx: builders.Context, kafka_admins: AdminClients,
    prune_children: bool, now: datetime, platform_policy: str = "",
    cache: ChildCache | None = None,
) -> Outcome:
    """One pass: observe -> decide -> build -> apply -> publish."""
    outcome = Outcome(obj=obj)
    meta = obj["metadata"]
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

    result = apply.ApplyResult()
    plan: state.Plan | None = None
    observed: state.Observed | None = None
    revs = observe.Revisions()
    try:
        if platform_policy:
            check_platform_policy(kube, ps, platform_policy)
        # Supporting children first: the gates are read from what was just applied.
        supporting = builders.supporting(ps, ctx)
        new = not _reconciled_before(obj)
        result = apply.apply_all(kube, supporting, cache, assume_absent=new)
        # No pod, no Job while a child is someone else's: its pods would run with a
        # ServiceAccount, settings or network rules that are not ours.
        result.raise_for_conflicts()
        # A new object has no revision yet, nor a migration Job: nothing to list or read.
        revs = observe.Revisions() if new else observe.revisions(kube, ps, meta["uid"])
        observed, plan, topic_report = _decide(kube, ps, obj, ctx, kafka_admins, result, revs,
                                               now, cache, new=new)
        if topic_report is not None and topic_report.done:
            outcome.events.append(Event("Normal", "KafkaTopicsChanged",
                                        f"{topic_report.bootstrap}: "
                                        + "; ".join(topic_report.done)))
        if plan.delete_migration:
            job = observe.migration_job(kube, ps, meta["uid"], observed.revision, cache)
            if job is not None:
                _delete_job(kube, ps, job.name)
        workloads = scale_downs_first(builders.workloads(ps, builders.Workloads(
            replicas=plan.replicas, templates=revs.templates, migration=plan.run_migration)),
            {rev: w.replicas for rev, w in revs.workloads.items()})
        _merge(result, apply.apply_all(kube, workloads, cache, assume_absent=new))
        scope = _prune_scope(obj, prune_children, revs.workloads.keys() - plan.replicas.keys())
        if scope is not None:
            wanted = {(m["kind"], m["metadata"]["name"]) for m in supporting + workloads}
            # A kept revision's Job stays until its TTL (its logs), even once not re-applied.
            wanted.update(("Job", builders.migrations.job_name(ps, rev))
                          for rev in {observed.revision, *plan.replicas})
            kinds = (resources.children(ctx.capabilities) if scope == "all"
                     else (observe.DEPLOYMENT, observe.JOB))
            apply.prune(kube, meta["namespace"], meta["uid"], builders.selector(ps), kinds,
                        wanted, result)
            if scope == "all":
                # KafkaTopics in Strimzi's namespace (owned by label): wherever they may be,
                # also in a namespace the spec named before.
                apply.prune_label_owned(
                    kube, topic_namespaces(ctx), meta["uid"], _kafka_topic_kinds(ctx),
                    {(m["metadata"]["namespace"], m["kind"], m["metadata"]["name"])
                     for m in supporting}, result)
        result.raise_for_conflicts()
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
    except apply.ConflictingObjectError as err:
        outcome.failure = conditions.Failure("ConflictingObject", str(err), retryable=False)
        outcome.events.extend(events.new_failure(obj, outcome.failure))
    except PolicyRefusalError as err:
        outcome.failure = err.failure
        outcome.events.extend(events.new_failure(obj, outcome.failure))
    # A canary's replica moves beside a stable revision (before the pass or after it, as at
    # promotion) are the rollout's: its step Events say them.
    rolling = plan is not None and any(
        st.canary_revision and st.stable_revision
        for st in (plan.state, state.RolloutState.from_status(obj.get("status"))))
    outcome.events.extend(events.writes(result, rescales=not rolling))
    observability.count_writes(
        created=len(result.created), updated=len(result.updated), pruned=len(result.pruned)
    )
    if plan is None or observed is None:
        _publish(kube, obj, None, outcome, now)
        return outcome
    # The rollout's Events are posted now, before the status records what they announce, so
    # a crash between the two cannot lose them (a replay's duplicates are refused by name).
    record.post(kube, obj, plan.events, now)
    outcome.requeue_after = plan.requeue_after
    if plan.outcome is not None:
        observability.ROLLOUTS.labels(plan.outcome).inc()
    if plan.step_seconds is not None:
        observability.STEP_SECONDS.observe(plan.step_seconds)
    informing = observe.informing(ps, ctx.capabilities, result.live)
    observation = _observation(ps, obj, observed, plan, outcome.failure, informing)
    _publish(kube, obj, observation, outcome, now)
    return outcome


def _decide(
    kube: Kube, ps: api.PaymentService, obj: Obj, ctx: builders.Context,
    kafka_admins: AdminClients, result: apply.ApplyResult, revs: observe.Revisions,
    now: datetime, cache: ChildCache | None = None, *, new: bool = False,
) -> tuple[state.Observed, state.Plan, topics.Report | None]:
    """Observe what the engine needs, decide; measure and decide again when analysis is due.

    With topicProvisioner admin the topics are reconciled here, through the Kafka admin API
    (synchronously, in this thread, each call bounded by the admin timeout), and the report
    becomes the TopicsReady gate.
    """
    uid = obj["metadata"]["uid"]
    rev = builders.revision(ps)
    topic_report = _admin_topics(ps, kafka_admins)
    current = state.RolloutState.from_status(obj.get("status"))
    # A new object has no Job yet; nor does a pass read one it does not decide from.
    reads_job = not new and engine.reads_job(current, ps.spec, rev)
    observed = state.Observed(
        revision=rev, image=ps.spec.image, replicas=ps.spec.replicas,
        job_name=builders.migrations.job_name(ps, rev), workloads=revs.workloads,
        job=observe.migration_job(kube, ps, uid, rev, cache) if reads_job else None,
        gates=observe.gate_states(
            ps, ctx.capabilities, result.live, topic_report,
            watched=ctx.sees(builders.kafka.topics_namespace(ps) or str(ps.metadata.namespace)),
            rates=observe.rates_config_map(kube, ps)),
        command=observe.command(obj.get("status")),
    )
    plan = engine.decide(current, ps.spec, observed, now)
    if plan.measure and ps.spec.rollout.canary and ps.spec.rollout.canary.analysis:
        variables = providers.variables(
            revision=rev, stable_revision=current.stable_revision or "",
            namespace=str(ps.metadata.namespace), name=str(ps.metadata.name))
        measurements = tuple(providers.measure_all(ps.spec.rollout.canary.analysis, variables))
        observed = dataclasses.replace(observed, measurements=measurements)
        plan = engine.decide(current, ps.spec, observed, now)
    return observed, plan, topic_report


def _admin_topics(ps: api.PaymentService, kafka_admins: AdminClients) -> topics.Report | None:
    """Reconcile the topics through the Kafka admin API, when the spec asks for that."""
    kafka = ps.spec.kafka
    if kafka is None or kafka.topic_provisioner != "admin" or not kafka.topics:
        return None
    return kafka_admins.reconcile(kafka.bootstrap_servers, topics.wanted_topics(kafka))


def _delete_job(kube: Kube, ps: api.PaymentService, name: str) -> None:
    live = kube.get(observe.JOB, ps.metadata.namespace, name)
    if live is not None:
        kube.delete(observe.JOB, ps.metadata.namespace, name, live["metadata"]["uid"])


def _merge(into: apply.ApplyResult, more: apply.ApplyResult) -> None:
    into.created.extend(more.created)
    into.updated.extend(more.updated)
    into.rescaled.extend(more.rescaled)
    into.conflicts.extend(more.conflicts)
    into.live.update(more.live)


def _observation(
    ps: api.PaymentService, obj: Obj, observed: state.Observed, plan: state.Plan,
    failure: conditions.Failure | None, informing: tuple[state.Gate, ...] = (),
) -> conditions.Observation:
    st = plan.state
    stable = observed.pods(st.stable_revision)
    canary = observed.pods(st.canary_revision) if st.canary_revision else None
    ready_canary = canary.ready if canary is not None else 0
    gate_conditions = {g.type: (g.open, g.reason, g.message)
                       for g in (*observed.gates, *informing)}
    gate_conditions.update(plan.conditions)
    if plan.replicas:  # the service runs pods (or is about to)
        stuck = [w for w in observed.workloads.values() if w.problem]
        gate_conditions["PodsHealthy"] = (
            (False, stuck[0].problem_reason, "; ".join(f"revision {w.revision}: {w.problem}"
                                                        for w in stuck))
            if stuck else (True, "NoStuckContainers", "no container of the service is stuck"))
    return conditions.Observation(
        generation=int(obj["metadata"].get("generation", 1)),
        selector=builders.selector(ps),
        phase=plan.phase,
        message=plan.message,
        replicas=sum(w.pods for w in observed.workloads.values()),
        ready_replicas=sum(w.ready for w in observed.workloads.values()),
        updated_replicas=observed.pods(observed.revision).pods,
        stable_image=stable.image or (ps.spec.image if st.stable_revision == observed.revision
                                      else None),
        canary_image=ps.spec.image if st.canary_revision else None,
        rollout=st.to_status(split.actual_weight(stable.ready, ready_canary)),
        gates=gate_conditions,
        abort_reason=st.abort_reason,
        failure=failure,
    )


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
        outcome.written = latest
        before, after = obj.get("status") or {}, latest.get("status") or {}
        outcome.events.extend(events.phase_change(before, after))
        outcome.events.extend(events.gate_changes(before, after))
