"""Pure status decisions: from what was observed and decided to the status to publish.

Conditions follow metav1.Condition and kstatus: ``Ready`` (the spec's revision is stable and
all its pods are ready), ``Reconciling`` (work in progress, with ``Progressing`` as its
Argo-friendly twin), ``Stalled`` (cannot make progress without a human: an aborted rollout,
a permanent API failure), ``Degraded`` (something failed; the stable revision may still
serve).  The gates ``SecretsReady``, ``TopicsReady`` and ``MigrationsApplied`` each say
whether a new revision may get pods.  A condition keeps its ``lastTransitionTime`` while its
status does not change, so an unchanged world produces an identical status and the status
writer can skip the write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Status = dict[str, Any]

#: Conditions that must hold before a new revision gets its first pod.
GATES = ("SecretsReady", "TopicsReady", "MigrationsApplied", "CurrencyRatesReady")


@dataclass(frozen=True)
class Failure:
    """Why the last reconcile could not finish."""

    reason: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class Observation:
    """Everything the status is computed from: the rollout plan and the pods it counted."""

    generation: int
    selector: str
    phase: str  # the rollout engine's phase: Progressing | Healthy | Paused | Degraded
    message: str
    replicas: int = 0  # pods of every revision
    ready_replicas: int = 0
    updated_replicas: int = 0  # pods of the spec's revision
    stable_image: str | None = None
    canary_image: str | None = None
    #: Fields the rollout state owns (stableRevision, canary, migration, ...).
    rollout: Mapping[str, Any] = field(default_factory=dict)
    #: Gate conditions: type -> (holds, reason, message).
    gates: Mapping[str, tuple[bool, str, str]] = field(default_factory=dict)
    #: Why the rollout is aborted ("Reason: details"), when it is.
    abort_reason: str = ""
    failure: Failure | None = None


def _condition(type_: str, ok: bool, reason: str, message: str, generation: int) -> Status:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "observedGeneration": generation,
        "reason": reason,
        "message": message or reason,
    }


def _reason_of(abort_reason: str) -> str:
    head = abort_reason.split(":", 1)[0].strip()
    return head if head.isalnum() and head[:1].isalpha() else "RolloutAborted"


def conditions(obs: Observation) -> list[Status]:
    """The operator's conditions for this observation (without transition times)."""
    gen, failure = obs.generation, obs.failure
    gates = [_condition(t, ok, reason, text, gen) for t, (ok, reason, text) in obs.gates.items()]
    if failure is not None:
        degraded = _condition("Degraded", True, failure.reason, failure.message, gen)
        stalled = not failure.retryable
        why_reason, why = failure.reason, failure.message
    elif obs.phase == "Degraded":
        reason = _reason_of(obs.abort_reason)
        degraded = _condition("Degraded", True, reason, obs.message, gen)
        stalled, why_reason, why = True, reason, obs.message
    else:
        degraded = _condition("Degraded", False, "AsExpected", "no failures", gen)
        stalled, why_reason, why = False, "", ""

    if stalled:
        stalled_c = _condition("Stalled", True, why_reason, why, gen)
    else:
        stalled_c = _condition("Stalled", False, "AsExpected", "making progress", gen)

    if failure is None and obs.phase == "Healthy":
        reconciling = _condition("Reconciling", False, "Reconciled", obs.message, gen)
        progressing = _condition("Progressing", False, "RolloutComplete", obs.message, gen)
        ready = _condition("Ready", True, "AllReplicasReady", obs.message, gen)
    else:
        if failure is not None:
            reason, text, busy = failure.reason, failure.message, not stalled
        elif obs.phase == "Paused":
            reason, text, busy = "Paused", obs.message, False
        elif obs.phase == "Degraded":
            reason, text, busy = why_reason, obs.message, False
        else:
            reason, text, busy = "RollingOut", obs.message, True
        reconciling = _condition("Reconciling", busy, reason, text, gen)
        progressing = _condition("Progressing", busy, reason, text, gen)
        ready = _condition("Ready", False, reason, text, gen)
    return [ready, reconciling, progressing, degraded, stalled_c, *gates]


def phase(obs: Observation) -> str:
    """The one-word summary: an API failure degrades whatever the rollout says."""
    return "Degraded" if obs.failure is not None else obs.phase


def keep_transition_times(
    new: Sequence[Status], old: Sequence[Mapping[str, Any]], now: datetime
) -> list[Status]:
    """Stamp lastTransitionTime: unchanged when the status did not flip, ``now`` otherwise."""
    previous = {c.get("type"): c for c in old}
    stamped = []
    for cond in new:
        before = previous.get(cond["type"])
        if before is not None and before.get("status") == cond["status"]:
            when = before.get("lastTransitionTime")
        else:
            when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        stamped.append({**cond, "lastTransitionTime": when})
    # Conditions this pass did not decide (a gate not relevant any more) are kept as they are.
    mine = {c["type"] for c in new}
    stamped.extend(dict(c) for c in old if c.get("type") not in mine)
    return stamped


def desired_status(obs: Observation, current: Mapping[str, Any], now: datetime) -> Status:
    """The status to publish, given the observation and the status currently stored."""
    conds = keep_transition_times(conditions(obs), current.get("conditions") or [], now)
    ph = phase(obs)
    message = obs.failure.message if obs.failure is not None else obs.message
    return {
        "observedGeneration": obs.generation,
        "phase": ph,
        "message": message,
        "conditions": conds,
        "replicas": obs.replicas,
        "readyReplicas": obs.ready_replicas,
        "updatedReplicas": obs.updated_replicas,
        "selector": obs.selector,
        "stableImage": obs.stable_image,
        "canaryImage": obs.canary_image,
        **obs.rollout,
    }


def flipped(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]],
            types: Sequence[str] = GATES) -> list[Mapping[str, Any]]:
    """Conditions of ``types`` whose status differs between two condition lists."""
    before = {c.get("type"): c.get("status") for c in old}
    return [c for c in new if c.get("type") in types and before.get(c.get("type")) != c["status"]]


def without_nulls(value: Any) -> Any:
    """``value`` with None entries dropped from maps (a merge patch deletes them)."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def differs(desired: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether writing ``desired`` would change the stored status (other keys are ignored)."""
    return any(
        without_nulls(current.get(key)) != without_nulls(value) for key, value in desired.items()
    )


def failed_status(
    generation: int, failure: Failure, current: Mapping[str, Any], now: datetime
) -> Status:
    """The status when the spec itself cannot be understood: not Ready, Stalled, Degraded."""
    conds = keep_transition_times(
        [
            _condition("Ready", False, failure.reason, failure.message, generation),
            _condition("Stalled", True, failure.reason, failure.message, generation),
            _condition("Degraded", True, failure.reason, failure.message, generation),
        ],
        current.get("conditions") or [],
        now,
    )
    return {"observedGeneration": generation, "phase": "Degraded",
            "message": failure.message, "conditions": conds}
