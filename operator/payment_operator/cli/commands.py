"""User commands, as a pure function: which one makes sense now, and the patch that gives it.

A command is ``status.command = {action, requestedAt, requestedBy}`` written through the
status subresource with a JSON merge patch (as the Argo CD actions in
``manifests/argocd/actions`` write it); the operator carries it out once, when
``requestedAt`` is newer than ``status.lastHandledCommandAt``.  :func:`prepare` refuses
(:class:`Refused`) a command the operator would only ignore, unless forced:

* ``promote`` / ``promoteFull`` / ``abort`` need a canary in flight that is not aborted;
* ``retry`` needs an aborted canary;
* any command while an earlier one is still pending would overwrite that one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from payment_operator.cli.render import dig, parse_time, step_position, steps_of

#: The actions the operator knows (``status.command.action``).
ACTIONS = ("promote", "promoteFull", "abort", "retry")
#: The API's limit on status.command.requestedBy.
MAX_REQUESTED_BY = 256


class Refused(Exception):
    """The command makes no sense now; the message says why (and what to do instead)."""


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC, to the second, with a Z (how the API server stores times)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Request:
    """A command ready to be written."""

    action: str
    requested_at: datetime
    requested_by: str
    #: What the operator will do with it, in a sentence.
    summary: str
    #: Why the command was refused, when it was forced anyway.
    forced: str = ""
    #: Set when requestedAt had to be later than now to be newer than the last command.
    note: str = ""

    def command(self) -> dict[str, str]:
        return {
            "action": self.action,
            "requestedAt": format_time(self.requested_at),
            "requestedBy": self.requested_by,
        }

    def patch(self, resource_version: str | None = None) -> dict[str, Any]:
        """The merge patch of the status subresource; with a resourceVersion it only
        applies to the object that was read (the API server answers 409 otherwise)."""
        body: dict[str, Any] = {"status": {"command": self.command()}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return body


def _pending(status: Mapping[str, Any]) -> str:
    """A command the operator has not handled yet, described ("" when there is none)."""
    command = status.get("command") or {}
    requested = parse_time(command.get("requestedAt"))
    if not command.get("action") or requested is None:
        return ""
    handled = parse_time(status.get("lastHandledCommandAt"))
    if handled is not None and handled >= requested:
        return ""
    return (f"{command['action']} requested by {command.get('requestedBy') or 'unknown'} at "
            f"{command['requestedAt']}")


def refusal(action: str, ps: Mapping[str, Any]) -> str:
    """Why ``action`` makes no sense for this PaymentService now ("" when it does)."""
    status = ps.get("status") or {}
    phase = status.get("phase") or "no status yet"
    canary = status.get("canaryRevision")
    aborted = bool(dig(status, "canary", "aborted"))
    if action not in ACTIONS:
        return f"unknown action {action!r}"
    if action in ("promote", "promoteFull", "abort"):
        verb = "abort" if action == "abort" else "promote"
        if not canary:
            return f"no canary is in flight (phase {phase}): nothing to {verb}"
        if aborted:
            return (f"the rollout of revision {canary} is aborted"
                    + (" already" if action == "abort" else "")
                    + ": use retry to start it over, or change the spec")
    if action == "retry" and not (canary and aborted):
        return (f"the rollout is not aborted (phase {phase}): "
                "retry only restarts an aborted rollout")
    pending = _pending(status)
    if pending:
        return (f"an earlier command is not handled yet ({pending}); is the operator "
                "running? A new command would replace it")
    return ""


def summary(action: str, ps: Mapping[str, Any]) -> str:
    """What the operator will do with ``action``, in a sentence."""
    status = ps.get("status") or {}
    canary, stable = status.get("canaryRevision"), status.get("stableRevision")
    position = step_position(ps)
    if action == "promote":
        if position is None or position[1] == 0:
            return f"promote revision {canary or '?'}"
        number, total, description = position
        if number >= total and description.startswith("all steps"):
            return f"revision {canary} is already being promoted"
        return f"skip step {number}/{total} ({description}) of revision {canary}"
    if action == "promoteFull":
        return (f"skip every remaining step and make revision {canary or '?'} stable")
    if action == "abort":
        return (f"scale canary revision {canary or '?'} to 0; stable revision "
                f"{stable or '(none)'} serves alone")
    if action == "retry":
        failed = dig(status, "migration", "phase") == "Failed"
        return (f"start revision {canary or '?'} over at step 1/{len(steps_of(ps))}"
                + ("; its failed migration Job runs again" if failed else ""))
    return action


def prepare(
    action: str, ps: Mapping[str, Any], *, now: datetime, user: str, force: bool = False
) -> Request:
    """The command to write, or :class:`Refused` (unless ``force``).

    ``requestedAt`` is ``now`` to the second; if that is not newer than the last command
    (two commands within a second, or a clock behind the operator's) it is one second after
    it, so the operator does not skip the command as already handled.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    why = refusal(action, ps)
    if why and not force:
        raise Refused(why)
    status = ps.get("status") or {}
    requested_at = now.astimezone(UTC).replace(microsecond=0)
    latest = max(
        (t for t in (parse_time(status.get("lastHandledCommandAt")),
                     parse_time(dig(status, "command", "requestedAt"))) if t is not None),
        default=None,
    )
    note = ""
    if latest is not None and requested_at <= latest:
        requested_at = latest.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        note = (f"requestedAt set to {format_time(requested_at)}, one second after the last "
                "command, so that the operator takes it as new")
    return Request(
        action=action,
        requested_at=requested_at,
        requested_by=(user or "unknown")[:MAX_REQUESTED_BY],
        summary=summary(action, ps),
        forced=why,
        note=note,
    )
