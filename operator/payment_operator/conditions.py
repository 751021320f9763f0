"""Pure status decisions: from what was observed to the status the operator should publish.

Conditions follow metav1.Condition and kstatus: ``Ready`` (all wanted pods of the newest
revision are ready), ``Reconciling`` (work in progress, with ``Progressing`` as its
Argo-friendly twin), ``Stalled`` (cannot make progress without a change from a human),
``Degraded`` (something failed; the service may still serve).  A condition keeps its
``lastTransitionTime`` while its status does not change, so an unchanged world produces an
identical status and the status writer can skip the write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Status = dict[str, Any]


@dataclass(frozen=True)
class Failure:
    """Why the last reconcile could not finish."""

    reason: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class WorkloadState:
    """What the stable Deployment reports (all zeros when it does not exist yet)."""

    exists: bool = False
    generation: int = 0
    observed_generation: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    progress_deadline_exceeded: bool = False
    message: str = ""

    @classmethod
    def from_deployment(cls, deployment: Mapping[str, Any] | None) -> WorkloadState:
        if not deployment:
            return cls()
        status = deployment.get("status", {})
        stuck = next(
            (
                c for c in status.get("conditions", [])
                if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
            ),
            None,
        )
        return cls(
            exists=True,
            generation=int(deployment.get("metadata", {}).get("generation", 0)),
            observed_generation=int(status.get("observedGeneration", 0)),
            replicas=int(status.get("replicas", 0)),
            ready_replicas=int(status.get("readyReplicas", 0)),
            updated_replicas=int(status.get("updatedReplicas", 0)),
            available_replicas=int(status.get("availableReplicas", 0)),
            progress_deadline_exceeded=stuck is not None,
            message=str(stuck.get("message", "")) if stuck else "",
        )


@dataclass(frozen=True)
class Observation:
    """Everything the status is computed from."""

    generation: int
    desired_replicas: int
    selector: str
    revision: str
    image: str
    workload: WorkloadState = field(default_factory=WorkloadState)
    failure: Failure | None = None


def _condition(type_: str, ok: bool, reason: str, message: str, generation: int) -> Status:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "observedGeneration": generation,
        "reason": reason,
        "message": message,
    }


def _rollout_done(obs: Observation) -> bool:
    w = obs.workload
    return (
        w.exists
        and w.observed_generation >= w.generation
        and w.updated_replicas >= obs.desired_replicas
        and w.ready_replicas >= obs.desired_replicas
        and w.available_replicas >= obs.desired_replicas
        and w.replicas == obs.desired_replicas
    )


def conditions(obs: Observation) -> list[Status]:
    """The operator's conditions for this observation (without transition times)."""
    gen, w, failure = obs.generation, obs.workload, obs.failure
    ready_text = f"{w.ready_replicas}/{obs.desired_replicas} replicas ready"
    done = _rollout_done(obs)
    stalled = (failure is not None and not failure.retryable) or w.progress_deadline_exceeded

    if failure is not None:
        degraded = _condition("Degraded", True, failure.reason, failure.message, gen)
    elif w.progress_deadline_exceeded:
        degraded = _condition("Degraded", True, "ProgressDeadlineExceeded", w.message, gen)
    else:
        degraded = _condition("Degraded", False, "AsExpected", "no failures", gen)

    if stalled:
        why = failure.message if failure is not None else w.message
        stalled_c = _condition("Stalled", True, degraded["reason"], why, gen)
    else:
        stalled_c = _condition("Stalled", False, "AsExpected", "making progress", gen)

    if done and failure is None:
        reconciling = _condition("Reconciling", False, "Reconciled", ready_text, gen)
        progressing = _condition("Progressing", False, "RolloutComplete", ready_text, gen)
        ready = _condition("Ready", True, "AllReplicasReady", ready_text, gen)
    else:
        if failure is not None:
            reason, text = failure.reason, failure.message
        elif not w.exists:
            reason, text = "Creating", "creating the workload"
        else:
            reason, text = "RollingOut", f"rolling out revision {obs.revision}: {ready_text}"
        reconciling = _condition("Reconciling", not stalled, reason, text, gen)
        progressing = _condition("Progressing", not stalled, reason, text, gen)
        ready = _condition("Ready", False, reason, text, gen)
    return [ready, reconciling, progressing, degraded, stalled_c]


def phase(conds: Sequence[Mapping[str, Any]]) -> str:
    by_type = {c["type"]: c["status"] for c in conds}
    if by_type.get("Degraded") == "True":
        return "Degraded"
    if by_type.get("Ready") == "True":
        return "Healthy"
    return "Progressing"


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
    # Conditions owned by other parts of the operator (SecretsReady, ...) are kept as they are.
    mine = {c["type"] for c in new}
    stamped.extend(dict(c) for c in old if c.get("type") not in mine)
    return stamped


def desired_status(obs: Observation, current: Mapping[str, Any], now: datetime) -> Status:
    """The status to publish, given the observation and the status currently stored."""
    conds = keep_transition_times(conditions(obs), current.get("conditions") or [], now)
    ph = phase(conds)
    ready = next(c for c in conds if c["type"] == "Ready")
    degraded = next(c for c in conds if c["type"] == "Degraded")
    message = degraded["message"] if ph == "Degraded" else ready["message"]
    return {
        "observedGeneration": obs.generation,
        "phase": ph,
        "message": message,
        "conditions": conds,
        "replicas": obs.workload.replicas,
        "readyReplicas": obs.workload.ready_replicas,
        "updatedReplicas": obs.workload.updated_replicas,
        "selector": obs.selector,
        "stableRevision": obs.revision,
        "stableImage": obs.image,
    }


def differs(desired: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether writing ``desired`` would change the stored status (other keys are ignored)."""
    return any(current.get(key) != value for key, value in desired.items())


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
