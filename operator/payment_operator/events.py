"""Which Kubernetes Events a reconcile pass posts about its PaymentService, and what they say.

Events are for humans watching ``kubectl describe``: one per kind of child write in a pass
(naming the children), one per phase change, and one per *new* failure (a failure already in
the Degraded condition is not announced again on every retry).  Handlers post them; nothing
here talks to the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payment_operator import conditions
from payment_operator.kube.apply import ApplyResult


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the PaymentService."""

    type: str
    reason: str
    message: str


#: Longest message of an Event that lists children (the API server's limit is 1 KiB).
MESSAGE_MAX = 1024


def writes(result: ApplyResult, *, rescales: bool = True) -> list[Event]:
    """One Normal Event per kind of write in the pass (created, updated, pruned), naming
    every child it wrote: a new PaymentService's six children are one Event, not six
    requests to the API server. Without ``rescales`` an update that changed only a
    Deployment's replicas is not named: a canary's replica moves, which its step Events
    (``StepCompleted``: the ready pods of each side) and the Deployment controller's own
    ``ScalingReplicaSet`` Events tell, would otherwise be an Event each."""
    updated = (result.updated if rescales
               else [ref for ref in result.updated if ref not in result.rescaled])
    out = []
    for reason, verb, refs, why in (("Created", "created", result.created, ""),
                                    ("Updated", "updated", updated,
                                     " (drifted or changed)"),
                                    ("Pruned", "deleted", result.pruned, ": no longer wanted")):
        if refs:
            out.append(Event("Normal", reason, listing(verb, refs, why)))
    return out


def listing(verb: str, refs: list[str], why: str) -> str:
    """``"<verb> A, B and C<why>"``, shortened to "... and N more" within :data:`MESSAGE_MAX`."""
    shown = list(refs)
    while True:
        rest = len(refs) - len(shown)
        names = ", ".join(shown) + (f" and {rest} more" if rest else "")
        message = f"{verb} {names}{why}"
        if len(message) <= MESSAGE_MAX or len(shown) <= 1:
            return message[:MESSAGE_MAX]
        shown.pop()


def is_new_failure(obj: Mapping[str, Any], failure: conditions.Failure) -> bool:
    """Whether this failure is not already reported (one Event per failure, not per retry)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Degraded":
            return not (
                cond.get("status") == "True"
                and cond.get("reason") == failure.reason
                and cond.get("message") == failure.message
            )
    return True


def new_failure(obj: Mapping[str, Any], failure: conditions.Failure) -> list[Event]:
    """A Warning for ``failure``, unless ``obj``'s status already reports it."""
    if not is_new_failure(obj, failure):
        return []
    return [Event("Warning", failure.reason, failure.message)]


def phase_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Event]:
    """An Event when a status write moved the phase (Warning when it became Degraded)."""
    old, new = before.get("phase"), after.get("phase")
    if new == old:
        return []
    kind = "Warning" if new == "Degraded" else "Normal"
    return [Event(kind, f"Phase{new}", f"phase {old} -> {new}: {after.get('message', '')}")]


def gate_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Event]:
    """An Event for each gate condition (SecretsReady, TopicsReady, MigrationsApplied) that
    opened or closed with a status write, and for MonitoringReady (which only informs). A
    gate seen for the first time is announced only when closed (what it waits for): one
    open from the start, such as the topics of a service that declares none, held nothing."""
    out = []
    old, new = before.get("conditions") or [], after.get("conditions") or []
    seen = {c.get("type") for c in old}
    for cond in conditions.flipped(old, new, (*conditions.GATES, "MonitoringReady")):
        ok = cond["status"] == "True"
        if ok and cond["type"] not in seen:
            continue
        if cond["type"] in conditions.GATES:
            reason = "GateOpened" if ok else "GateClosed"
        else:
            reason = "MonitoringReady" if ok else "MonitoringNotReady"
        out.append(Event("Normal" if ok else "Warning", reason,
                         f"{cond['type']}: {cond.get('message', '')}"))
    return out
