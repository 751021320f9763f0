"""What the canary engine reads and writes: its state (kept in status), observations, plans.

:class:`RolloutState` round-trips through ``status`` (``stableRevision``, ``canaryRevision``,
``canary``, ``migration``, ``lastHandledCommandAt``), so a restarted operator resumes where
the last one stopped.  :class:`Observed` is everything the reconciler read from the API
server before deciding; :class:`Plan` is the decision: replica counts per revision, the
migration Job to run or delete, the new state, the phase, Events and when to look again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from payment_operator.rollout import analysis

Phase = Literal["Progressing", "Healthy", "Paused", "Degraded"]
JobPhase = Literal["Running", "Succeeded", "Failed"]


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from status (or None)."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def format_time(value: datetime | None) -> str | None:
    """RFC 3339 with a Z, to the second, as the API server stores it."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Migration:
    """The migration Job of the newest revision that needed one."""

    revision: str
    job: str
    phase: JobPhase
    applied_at: datetime | None = None
    message: str = ""


@dataclass(frozen=True)
class RolloutState:
    """The engine's memory, stored in status."""

    stable_revision: str | None = None
    canary_revision: str | None = None
    step_index: int = 0
    step_started_at: datetime | None = None
    weight: int = 0
    paused: bool = False
    aborted: bool = False
    abort_reason: str = ""
    analysis: analysis.Run | None = None
    migration: Migration | None = None
    last_command_at: datetime | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> RolloutState:
        status = status or {}
        canary = status.get("canary") or {}
        mig = status.get("migration") or {}
        migration = None
        if mig.get("revision") and mig.get("phase"):
            migration = Migration(
                revision=str(mig["revision"]), job=str(mig.get("job") or ""),
                phase=mig["phase"], applied_at=parse_time(mig.get("appliedAt")),
                message=str(mig.get("message") or ""),
            )
        return cls(
            stable_revision=status.get("stableRevision") or None,
            canary_revision=status.get("canaryRevision") or None,
            step_index=int(canary.get("stepIndex") or 0),
            step_started_at=parse_time(canary.get("stepStartedAt")),
            weight=int(canary.get("weight") or 0),
            paused=bool(canary.get("paused")),
            aborted=bool(canary.get("aborted")),
            abort_reason=str(canary.get("abortReason") or ""),
            analysis=analysis.Run.from_status(canary.get("analysis")),
            migration=migration,
            last_command_at=parse_time(status.get("lastHandledCommandAt")),
        )

    def to_status(self, actual_weight: int) -> dict[str, Any]:
        """The status fields this state owns (None clears a field with a merge patch)."""
        canary: dict[str, Any] | None = None
        if self.canary_revision is not None:
            canary = {
                "stepIndex": self.step_index,
                "stepStartedAt": format_time(self.step_started_at),
                "weight": self.weight,
                "actualWeight": actual_weight,
                "paused": self.paused,
                "aborted": self.aborted,
                "abortReason": self.abort_reason or None,
                "analysis": self.analysis.to_status() if self.analysis is not None else None,
            }
        migration = None
        if self.migration is not None:
            migration = {
                "revision": self.migration.revision,
                "job": self.migration.job,
                "phase": self.migration.phase,
                "appliedAt": format_time(self.migration.applied_at),
                "message": self.migration.message or None,
            }
        return {
            "stableRevision": self.stable_revision,
            "canaryRevision": self.canary_revision,
            "canary": canary,
            "migration": migration,
            "lastHandledCommandAt": format_time(self.last_command_at),
        }

    def restart_steps(self, now: datetime | None) -> RolloutState:
        """The same canary, back at its first step."""
        return replace(self, step_index=0, step_started_at=now, weight=0, paused=False,
                       aborted=False, abort_reason="", analysis=None)


@dataclass(frozen=True)
class Workload:
    """One revision's Deployment as observed: wanted, existing and ready pods."""

    revision: str
    replicas: int  # spec.replicas
    pods: int  # status.replicas
    ready: int  # status.readyReplicas
    image: str = ""
    created_at: datetime | None = None
    #: Why a pod of this revision cannot start, e.g. "pod x: CreateContainerConfigError: ...".
    problem: str = ""
    problem_reason: str = ""


@dataclass(frozen=True)
class Job:
    """The migration Job of the newest revision, as observed."""

    name: str
    phase: JobPhase
    reason: str = ""
    message: str = ""
    terminating: bool = False


@dataclass(frozen=True)
class Gate:
    """A precondition of any new pod (SecretsReady, TopicsReady) and whether it holds."""

    type: str
    open: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Command:
    """A user command from ``status.command``."""

    action: str
    requested_at: datetime
    requested_by: str = ""


@dataclass(frozen=True)
class Observed:
    """Everything :func:`~payment_operator.rollout.engine.decide` needs from the cluster."""

    revision: str  # the revision of the current spec
    image: str  # the image of the current spec
    replicas: int  # spec.replicas (the autoscaler writes it through the scale subresource)
    job_name: str = ""  # name of the migration Job of ``revision``
    workloads: Mapping[str, Workload] = field(default_factory=dict)
    job: Job | None = None  # the migration Job of ``revision``, if it exists
    gates: tuple[Gate, ...] = ()
    command: Command | None = None
    #: Measurements taken this pass (only when the analysis was due), else None.
    measurements: tuple[analysis.MetricResult, ...] | None = None

    def pods(self, revision: str | None) -> Workload:
        """The workload of a revision (an empty one when it has no Deployment)."""
        if revision is not None and revision in self.workloads:
            return self.workloads[revision]
        return Workload(revision or "", 0, 0, 0)


@dataclass(frozen=True)
class Event:
    """An Event to post about the PaymentService."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Outcome = Literal["promoted", "aborted", "superseded", "rolledBack"]


@dataclass(frozen=True)
class Plan:
    """What to do now, and what to remember."""

    state: RolloutState
    #: Desired spec.replicas of every revision's Deployment that should exist.
    replicas: Mapping[str, int]
    phase: Phase
    message: str
    #: Whether the migration Job of the current revision should exist (be created).
    run_migration: bool = False
    #: Delete the (failed) migration Job of the current revision, to run it again.
    delete_migration: bool = False
    events: tuple[Event, ...] = ()
    #: Seconds until the engine must look again even if nothing changes.
    requeue_after: float | None = None
    #: Conditions the engine owns: type -> (status, reason, message).
    conditions: Mapping[str, tuple[bool, str, str]] = field(default_factory=dict)
    #: A rollout that ended in this pass, for the operator's metrics.
    outcome: Outcome | None = None
    #: Seconds the step that ended in this pass took (for step-duration metrics).
    step_seconds: float | None = None
    #: Whether the analysis of the current step is due (the reconciler measures, then
    #: decides again with the measurements).
    measure: bool = False
