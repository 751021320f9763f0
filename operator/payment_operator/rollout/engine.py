"""The canary state machine: ``decide(state, spec, observed, now) -> Plan``.

Pure: no I/O, no clock (``now`` is passed in), no Kopf, no Kubernetes client.  One call
looks at the stored :class:`~.state.RolloutState`, the spec and what the reconciler observed,
and returns the next :class:`~.state.Plan`.  The order of a rollout of a new revision:

1. a user command (``promote``, ``promoteFull``, ``abort``, ``retry``) is handled once;
2. gates (``SecretsReady``, ``TopicsReady``): while one is closed no pod of the new
   revision exists and the rollout holds at weight 0;
3. the migration Job of the new revision (``MigrationsApplied``); a failed Job aborts;
4. the canary steps (``setWeight``, ``pause``, ``analysis``), each ended by its own rule;
5. promotion: the canary's pods are scaled up to the full count and become the stable
   revision; the old revision is scaled to 0 (kept for the revision history).

An abort (failed analysis or migration, passed progress deadline, ``abort`` command) scales
the canary to 0 and the stable revision back to full size at once.  The spec going back to
the stable revision skips every step; a newer revision during a canary supersedes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from payment_operator.api.v1alpha1 import CanaryStep, PaymentServiceSpec
from payment_operator.api.v1alpha1.base import parse_duration
from payment_operator.rollout import analysis, split
from payment_operator.rollout.state import (
    Command,
    Event,
    Migration,
    Observed,
    Outcome,
    Phase,
    Plan,
    RolloutState,
)

#: Old revisions kept at 0 replicas besides the stable and canary ones (then pruned).
REVISION_HISTORY_LIMIT = 2
#: How soon to look again while a migration Job is being deleted for a retry.
RETRY_POLL_SECONDS = 2.0
#: How often a closed gate is looked at again (ExternalSecrets and KafkaTopics are not watched).
GATE_POLL_SECONDS = 10.0

MIGRATIONS_APPLIED = "MigrationsApplied"


@dataclass
class _Pass:
    """What one decision accumulates before it becomes a Plan."""

    state: RolloutState
    events: list[Event] = field(default_factory=list)
    conditions: dict[str, tuple[bool, str, str]] = field(default_factory=dict)
    requeue_after: float | None = None
    outcome: Outcome | None = None
    step_seconds: float | None = None
    run_migration: bool = False
    delete_migration: bool = False
    measure: bool = False

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.5)
        self.requeue_after = seconds if self.requeue_after is None else min(
            self.requeue_after, seconds)

    def plan(self, replicas: dict[str, int], phase: Phase, message: str) -> Plan:
        return Plan(
            state=self.state, replicas=replicas, phase=phase, message=message,
            run_migration=self.run_migration, delete_migration=self.delete_migration,
            events=tuple(self.events), requeue_after=self.requeue_after,
            conditions=dict(self.conditions), outcome=self.outcome,
            step_seconds=self.step_seconds, measure=self.measure,
        )


def steps_of(spec: PaymentServiceSpec) -> tuple[CanaryStep, ...]:
    """The canary steps (none without a canary strategy: the new revision goes out at once)."""
    canary = spec.rollout.canary
    return tuple(canary.steps) if canary is not None else ()


def max_surge(spec: PaymentServiceSpec) -> int:
    canary = spec.rollout.canary
    return canary.max_surge if canary is not None else 1


def describe(step: CanaryStep) -> str:
    """A step in a few words, for messages and Events."""
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration else "pause (until promoted)"
    return "analysis"


def decide(
    state: RolloutState, spec: PaymentServiceSpec, observed: Observed, now: datetime
) -> Plan:
    """The next plan for this PaymentService."""
    state = _adopt(state, observed)
    work = _Pass(state)
    if state.stable_revision is not None and observed.revision == state.stable_revision:
        return _steady(work, spec, observed, now)
    return _rollout(work, spec, observed, now)


def _adopt(state: RolloutState, observed: Observed) -> RolloutState:
    """Without a recorded stable revision, the workload with the most pods is the stable one."""
    if state.stable_revision is not None:
        return state
    serving = [w for w in observed.workloads.values()
               if w.replicas > 0 and w.revision != state.canary_revision]
    if not serving:
        return state
    best = max(serving, key=lambda w: (w.ready, w.replicas, w.revision))
    return replace(state, stable_revision=best.revision)


# ---- no rollout: the spec asks for the stable revision ------------------------------------


def _steady(work: _Pass, spec: PaymentServiceSpec, observed: Observed, now: datetime) -> Plan:
    state = work.state
    assert state.stable_revision is not None
    _ignore_command(work, observed, "no rollout is in progress")
    if state.canary_revision is not None:
        work.event("RolledBack", f"the spec is back at the stable revision {state.stable_revision}:"
                   f" canary {state.canary_revision} scaled to 0, steps skipped")
        work.outcome = "rolledBack"
        work.state = replace(work.state.restart_steps(None), canary_revision=None)
    replicas = _keep(observed, {state.stable_revision: observed.replicas})
    stable = observed.pods(state.stable_revision)
    work.conditions[MIGRATIONS_APPLIED] = _migration_condition(work.state, observed, spec)
    if stable.ready >= observed.replicas and stable.pods == observed.replicas:
        return work.plan(replicas, "Healthy",
                         f"{stable.ready}/{observed.replicas} replicas ready")
    problem = f" ({stable.problem})" if stable.problem else ""
    return work.plan(replicas, "Progressing",
                     f"scaling revision {state.stable_revision}: "
                     f"{stable.ready}/{observed.replicas} replicas ready{problem}")


def _ignore_command(work: _Pass, observed: Observed, why: str) -> None:
    command = _new_command(work.state, observed)
    if command is not None:
        work.state = replace(work.state, last_command_at=command.requested_at)
        work.event("CommandIgnored", f"{command.action} by {command.requested_by or 'unknown'}"
                   f" ignored: {why}")


def _new_command(state: RolloutState, observed: Observed) -> Command | None:
    command = observed.command
    if command is None:
        return None
    if state.last_command_at is not None and command.requested_at <= state.last_command_at:
        return None
    return command


# ---- a rollout of the spec's revision -----------------------------------------------------


def _rollout(work: _Pass, spec: PaymentServiceSpec, observed: Observed, now: datetime) -> Plan:
    revision = observed.revision
    state = work.state
    if state.canary_revision != revision:
        if state.canary_revision is not None:
            work.event("RolloutSuperseded", f"revision {revision} supersedes canary "
                       f"{state.canary_revision}, which is scaled to 0")
            work.outcome = "superseded"
        else:
            work.event("RolloutStarted", f"rolling out revision {revision} ({observed.image})")
        state = replace(state.restart_steps(None), canary_revision=revision)
        if state.migration is not None and state.migration.revision != revision:
            state = replace(state, migration=_forget_other_migration(state.migration))
        work.state = state

    if _handle_command(work, spec, observed, now):
        return _hold_aborted(work, spec, observed)
    if work.state.aborted:
        return _hold_aborted(work, spec, observed)

    closed = [g for g in observed.gates if not g.open]
    if closed:
        work.conditions[MIGRATIONS_APPLIED] = _migration_condition(work.state, observed, spec)
        names = ", ".join(f"{g.type} ({g.message})" for g in closed)
        work.requeue(GATE_POLL_SECONDS)
        return work.plan(_hold(observed, work.state), "Progressing",
                         f"revision {revision} waits for {names}")

    if not _migrated(work, spec, observed, now):
        if work.state.aborted:
            return _hold_aborted(work, spec, observed)
        work.conditions[MIGRATIONS_APPLIED] = _migration_condition(work.state, observed, spec)
        return work.plan(_hold(observed, work.state), "Progressing",
                         f"revision {revision} waits for its migration Job "
                         f"{observed.job_name}")
    work.conditions[MIGRATIONS_APPLIED] = _migration_condition(work.state, observed, spec)
    if work.state.stable_revision is None:
        return _promote(work, spec, observed, now)  # the first revision skips the steps
    return _steps(work, spec, observed, now)


def _forget_other_migration(migration: Migration) -> Migration | None:
    """A finished migration of another revision is history; a running one is abandoned."""
    return migration if migration.phase == "Succeeded" else None


def _handle_command(work: _Pass, spec: PaymentServiceSpec, observed: Observed,
                    now: datetime) -> bool:
    """Carry out a new command; True when the rollout is now aborted by it."""
    command = _new_command(work.state, observed)
    if command is None:
        return False
    state = replace(work.state, last_command_at=command.requested_at)
    who = command.requested_by or "unknown"
    steps = steps_of(spec)
    if command.action == "abort" and not state.aborted:
        work.state = state
        _abort(work, f"aborted by {who}", reason="AbortCommand")
        return True
    if command.action == "retry" and state.aborted:
        work.event("RetryCommand", f"retry by {who}: revision {state.canary_revision} starts over")
        failed = state.migration is not None and state.migration.phase == "Failed"
        if failed and observed.job is not None:
            work.delete_migration = True
        work.state = replace(state.restart_steps(None), migration=None if failed
                             else state.migration)
        return False
    if command.action in ("promote", "promoteFull") and not state.aborted:
        target = len(steps) if command.action == "promoteFull" else min(
            state.step_index + 1, len(steps))
        what = "all steps skipped" if command.action == "promoteFull" else (
            f"step {state.step_index + 1}/{len(steps)} skipped"
            if state.step_index < len(steps) else "already promoting")
        work.event("PromoteCommand", f"{command.action} by {who}: {what}")
        started = state.step_started_at is not None
        work.state = replace(state, step_index=target, paused=False, analysis=None,
                             step_started_at=now if started else None,
                             weight=_weight_before(steps, target, state.weight))
        return False
    work.state = state
    work.event("CommandIgnored", f"{command.action} by {who} ignored: "
               + ("the rollout is aborted (use retry)" if state.aborted
                  else "the rollout is not aborted"))
    return False


def _weight_before(steps: tuple[CanaryStep, ...], index: int, current: int) -> int:
    """The weight in force at step ``index``: the last setWeight before it (or ``current``)."""
    for step in reversed(steps[:index]):
        if step.set_weight is not None:
            return max(step.set_weight, current)
    return current


def _abort(work: _Pass, why: str, reason: str) -> None:
    work.state = replace(work.state, aborted=True, abort_reason=f"{reason}: {why}",
                         paused=False)
    work.outcome = "aborted"
    work.event("RolloutAborted", f"revision {work.state.canary_revision}: {why}; "
               f"stable revision {work.state.stable_revision or '(none)'} serves alone",
               warning=True)


def _hold(observed: Observed, state: RolloutState) -> dict[str, int]:
    """No pod of the new revision: stable at full size, every other revision at 0."""
    wanted = {state.stable_revision: observed.replicas} if state.stable_revision else {}
    return _keep(observed, wanted)


def _hold_aborted(work: _Pass, spec: PaymentServiceSpec, observed: Observed) -> Plan:
    work.conditions.setdefault(MIGRATIONS_APPLIED, _migration_condition(work.state, observed,
                                                                        spec))
    return work.plan(_hold(observed, work.state), "Degraded",
                     f"rollout of revision {work.state.canary_revision} aborted "
                     f"({work.state.abort_reason}); retry or change the spec")


def _keep(observed: Observed, wanted: dict[str, int]) -> dict[str, int]:
    """Replicas for the wanted revisions, 0 for the newest others; older ones are pruned."""
    others = sorted(
        (w for w in observed.workloads.values() if w.revision not in wanted),
        key=lambda w: (w.created_at is not None, w.created_at or datetime.min, w.revision),
        reverse=True,
    )
    kept = {w.revision: 0 for w in others[:REVISION_HISTORY_LIMIT]}
    # A wanted revision at 0 without a Deployment needs none yet.
    kept.update({rev: n for rev, n in wanted.items() if n > 0 or rev in observed.workloads})
    return kept


# ---- migrations -----------------------------------------------------------------------------


def _needs_migration(state: RolloutState, spec: PaymentServiceSpec, revision: str) -> bool:
    if not spec.database.migrations.enabled:
        return False
    done = state.migration
    return not (done is not None and done.revision == revision and done.phase == "Succeeded")


def reads_job(state: RolloutState, spec: PaymentServiceSpec, revision: str) -> bool:
    """Whether a pass needs the revision's migration Job to decide: while its migration is
    wanted and not done, or a failed one may be retried (its Job is deleted first). Other
    passes (no migrations, or this revision's done) read no Job."""
    failed = state.migration is not None and state.migration.phase == "Failed"
    return failed or _needs_migration(state, spec, revision)


def _migrated(work: _Pass, spec: PaymentServiceSpec, observed: Observed, now: datetime) -> bool:
    """Whether the revision's schema is ready; drives the Job meanwhile."""
    revision = observed.revision
    if not _needs_migration(work.state, spec, revision):
        return True
    job = observed.job
    if work.delete_migration:
        work.requeue(RETRY_POLL_SECONDS)  # the failed Job goes away first
        return False
    if job is None or job.terminating:
        if job is not None:
            work.requeue(RETRY_POLL_SECONDS)  # the failed Job is still going away
            return False
        work.run_migration = True
        if work.state.migration is None or work.state.migration.revision != revision:
            work.event("MigrationStarted", f"migration Job {observed.job_name} created for "
                       f"revision {revision}")
        work.state = replace(work.state, migration=Migration(revision, observed.job_name,
                                                             "Running"))
        return False
    if job.phase == "Running":
        work.run_migration = True
        work.state = replace(work.state, migration=Migration(revision, job.name, "Running"))
        return False
    if job.phase == "Succeeded":
        work.state = replace(work.state, migration=Migration(revision, job.name, "Succeeded",
                                                             applied_at=now))
        work.event("MigrationSucceeded", f"migration Job {job.name} succeeded")
        return True
    detail = f"{job.reason}: {job.message}" if job.message else job.reason or "failed"
    work.state = replace(work.state, migration=Migration(revision, job.name, "Failed",
                                                         message=detail))
    work.event("MigrationFailed", f"migration Job {job.name} failed ({detail})", warning=True)
    _abort(work, f"migration Job {job.name} failed ({detail})", reason="MigrationFailed")
    return False


def _migration_condition(
    state: RolloutState, observed: Observed, spec: PaymentServiceSpec
) -> tuple[bool, str, str]:
    if not spec.database.migrations.enabled:
        return True, "Disabled", "migrations are disabled (spec.database.migrations.enabled)"
    m = state.migration
    revision = observed.revision
    if m is not None and m.revision == revision:
        if m.phase == "Succeeded":
            return True, "Succeeded", f"migration Job {m.job} succeeded for revision {revision}"
        if m.phase == "Failed":
            return False, "JobFailed", f"migration Job {m.job} failed: {m.message}"
        return False, "Running", f"migration Job {m.job} runs for revision {revision}"
    if revision == state.stable_revision:
        return True, "StableRevision", f"revision {revision} is the stable revision"
    return False, "Pending", f"revision {revision} has not been migrated yet"


# ---- steps and promotion --------------------------------------------------------------------


def _steps(work: _Pass, spec: PaymentServiceSpec, observed: Observed, now: datetime) -> Plan:
    steps = steps_of(spec)
    if work.state.step_started_at is None:
        work.state = replace(work.state, step_started_at=now)
    for _ in range(len(steps) + 1):
        index = work.state.step_index
        if index >= len(steps):
            return _promote(work, spec, observed, now)
        result = _step(work, spec, steps[index], observed, now)
        if result is not None:
            return result
        started = work.state.step_started_at or now
        work.step_seconds = (now - started).total_seconds()
        stable = observed.pods(work.state.stable_revision)
        canary = observed.pods(work.state.canary_revision)
        work.event("StepCompleted", f"step {index + 1}/{len(steps)} ({describe(steps[index])}) "
                   f"done after {work.step_seconds:.0f}s: stable {stable.ready}/"
                   f"{stable.replicas} ready, canary {canary.ready}/{canary.replicas} ready, "
                   f"actual weight {split.actual_weight(stable.ready, canary.ready)}%")
        work.state = replace(work.state, step_index=index + 1, step_started_at=now,
                             paused=False, analysis=None)
    return _promote(work, spec, observed, now)


def _split_now(spec: PaymentServiceSpec, observed: Observed, state: RolloutState,
               weight: int) -> tuple[split.Split, split.Split]:
    """(target, next) counts for ``weight`` from the current Deployments."""
    stable, canary = observed.pods(state.stable_revision), observed.pods(state.canary_revision)
    want = split.target(observed.replicas, weight, max_surge(spec))
    if state.stable_revision is None:
        want = split.Split(0, observed.replicas)
    current = split.Split(stable.replicas, canary.replicas)
    return want, split.advance(current, canary.ready, want, observed.replicas, max_surge(spec))


def _replicas(observed: Observed, state: RolloutState, counts: split.Split) -> dict[str, int]:
    wanted = {state.canary_revision or observed.revision: counts.canary}
    if state.stable_revision is not None:
        wanted[state.stable_revision] = counts.stable
    return _keep(observed, wanted)


def _in_place(observed: Observed, state: RolloutState, want: split.Split) -> bool:
    """Whether both Deployments ask for the split, run no extra pod and have it all ready."""
    stable, canary = observed.pods(state.stable_revision), observed.pods(state.canary_revision)
    return (stable.replicas == want.stable and canary.replicas == want.canary
            and stable.pods <= want.stable and canary.pods <= want.canary
            and stable.ready >= want.stable and canary.ready >= want.canary)


def _where(observed: Observed, state: RolloutState, want: split.Split) -> str:
    stable, canary = observed.pods(state.stable_revision), observed.pods(state.canary_revision)
    text = (f"canary {canary.ready}/{want.canary} ready, stable {stable.ready}/{want.stable} "
            f"ready")
    problems = [w.problem for w in (canary, stable) if w.problem]
    return f"{text} ({'; '.join(problems)})" if problems else text


def _deadline(work: _Pass, spec: PaymentServiceSpec, now: datetime, what: str) -> bool:
    """Abort when the step has waited for its pods longer than progressDeadlineSeconds."""
    started = work.state.step_started_at or now
    limit = spec.rollout.progress_deadline_seconds
    waited = (now - started).total_seconds()
    if waited > limit:
        _abort(work, f"progress deadline of {limit}s passed: {what}",
               reason="ProgressDeadlineExceeded")
        return True
    work.requeue(limit - waited + 1)
    return False


def _step(work: _Pass, spec: PaymentServiceSpec, step: CanaryStep, observed: Observed,
          now: datetime) -> Plan | None:
    """The plan while ``step`` runs, or None when it is done."""
    state = work.state
    steps = steps_of(spec)
    label = f"step {state.step_index + 1}/{len(steps)} ({describe(step)})"
    if step.set_weight is not None:
        work.state = state = replace(state, weight=step.set_weight)
    want, counts = _split_now(spec, observed, state, state.weight)
    replicas = _replicas(observed, state, counts)
    started = state.step_started_at or now

    if step.set_weight is not None:
        if _in_place(observed, state, want):
            return None
        where = _where(observed, state, want)
        if _deadline(work, spec, now, f"{label}: {where}"):
            return _hold_aborted(work, spec, observed)
        return work.plan(replicas, "Progressing", f"{label}: {where}")

    if step.pause is not None:
        if step.pause.duration is None:
            work.state = replace(state, paused=True)
            return work.plan(replicas, "Paused", f"{label} at weight {state.weight}%: "
                             "promote to continue")
        remaining = (parse_duration(step.pause.duration) - (now - started)).total_seconds()
        if remaining <= 0:
            return None
        work.requeue(remaining)
        return work.plan(replicas, "Progressing",
                         f"{label} at weight {state.weight}%: {remaining:.0f}s left")

    return _analysis_step(work, spec, step, observed, now, replicas, label)


def _analysis_step(work: _Pass, spec: PaymentServiceSpec, step: CanaryStep, observed: Observed,
                   now: datetime, replicas: dict[str, int], label: str) -> Plan | None:
    settings = spec.rollout.canary.analysis if spec.rollout.canary is not None else None
    assert settings is not None and step.analysis is not None  # the CRD guarantees both
    run = work.state.analysis or analysis.start(now)
    if observed.measurements is not None and run.phase == "Running":
        run = analysis.record(run, settings, step.analysis, observed.measurements, now)
        work.event("AnalysisMeasured", f"{label}: {run.message}",
                   warning=run.phase in ("Failed", "Error"))
    work.state = replace(work.state, analysis=run)
    if run.phase == "Successful":
        return None
    if run.phase in ("Failed", "Error"):
        _abort(work, f"analysis {run.phase.lower()}: {run.message}",
               reason="AnalysisFailed" if run.phase == "Failed" else "AnalysisError")
        return _hold_aborted(work, spec, observed)
    if run.phase == "Inconclusive":
        work.state = replace(work.state, paused=True)
        return work.plan(replicas, "Paused", f"{label} inconclusive: {run.message}; "
                         "promote to continue or abort")
    if analysis.is_due(run, settings, now):
        work.measure = True
    else:
        work.requeue((analysis.next_measurement_at(run, settings) - now).total_seconds())
    return work.plan(replicas, "Progressing", f"{label}: {run.message or 'measuring'}")


def _promote(work: _Pass, spec: PaymentServiceSpec, observed: Observed, now: datetime) -> Plan:
    state = work.state
    first = state.stable_revision is None
    want, counts = _split_now(spec, observed, state, 100)
    if _in_place(observed, state, want):
        revision = observed.revision
        work.event("Promoted", f"revision {revision} ({observed.image}) is stable with "
                   f"{observed.replicas} replicas" + ("" if first else
                                                      f"; {state.stable_revision} scaled to 0"))
        work.outcome = "promoted"
        work.state = replace(state.restart_steps(None), stable_revision=revision,
                             canary_revision=None)
        replicas = _keep(observed, {revision: observed.replicas})
        return work.plan(replicas, "Healthy", f"{observed.replicas}/{observed.replicas} "
                         "replicas ready")
    label = "creating" if first else "promoting"
    where = _where(observed, state, want)
    if not first and _deadline(work, spec, now, f"{label}: {where}"):
        return _hold_aborted(work, spec, observed)
    return work.plan(_replicas(observed, state, counts), "Progressing",
                     f"{label} revision {observed.revision}: {where}")
