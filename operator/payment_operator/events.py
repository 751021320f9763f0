"""Which Kubernetes Events a reconcile pass posts about its PaymentService, and what they say.

Events are for humans watching ``kubectl describe``: one per child written, one per phase
change, and one per *new* failure (a failure already in the Degraded condition is not
announced again on every retry).  Handlers post them; nothing here talks to the API.
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


def writes(result: ApplyResult) -> list[Event]:
    """One Normal Event per child created, updated or pruned."""
    return [
        *(Event("Normal", "Created", f"created {ref}") for ref in result.created),
        *(Event("Normal", "Updated", f"updated {ref} (drifted or changed)")
          for ref in result.updated),
        *(Event("Normal", "Pruned", f"deleted {ref}: no longer wanted") for ref in result.pruned),
    ]


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
    opened or closed with a status write, and for MonitoringReady (which only informs)."""
    out = []
    old, new = before.get("conditions") or [], after.get("conditions") or []
    for cond in conditions.flipped(old, new, (*conditions.GATES, "MonitoringReady")):
        ok = cond["status"] == "True"
        if cond["type"] in conditions.GATES:
            reason = "GateOpened" if ok else "GateClosed"
        else:
            reason = "MonitoringReady" if ok else "MonitoringNotReady"
        out.append(Event("Normal" if ok else "Warning", reason,
                         f"{cond['type']}: {cond.get('message', '')}"))
    return out
