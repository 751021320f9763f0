"""Which command makes sense now, and the status patch that gives it (no cluster)."""

from __future__ import annotations

import re
from datetime import timedelta, timezone

import pytest
from payment_operator.api.v1alpha1.status import Command
from payment_operator.cli import commands

from tests.unit.cli.objects import (
    CANARY,
    NOW,
    STABLE,
    ago,
    canary_status,
    healthy_status,
    service,
)

pytestmark = pytest.mark.unit

RFC3339_SECONDS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def paused():
    return service(canary_status(1, 25, 20, phase="Paused", paused=True))


def aborted(migration_failed=False):
    migration = None
    if migration_failed:
        migration = {"revision": CANARY, "job": f"pay-migrate-{CANARY}", "phase": "Failed",
                     "message": "BackoffLimitExceeded"}
    return service(canary_status(3, 50, 0, phase="Degraded", aborted=True,
                                 abortReason="AbortCommand: aborted by alice",
                                 migration=migration))


def healthy():
    return service(healthy_status())


def prepare(action, ps, **kw):
    return commands.prepare(action, ps, now=kw.pop("now", NOW), user=kw.pop("user", "alice"),
                            **kw)


@pytest.mark.parametrize(("action", "ps"), [
    ("promote", paused()), ("promoteFull", paused()), ("abort", paused()), ("retry", aborted()),
])
def test_patch_writes_only_status_command(action, ps):
    request = prepare(action, ps, now=NOW.replace(microsecond=987654))
    patch = request.patch("4711")
    assert patch == {
        "metadata": {"resourceVersion": "4711"},
        "status": {"command": {"action": action, "requestedAt": "2026-12-01T12:00:00Z",
                               "requestedBy": "alice"}},
    }
    assert "spec" not in patch and set(patch["status"]) == {"command"}
    assert "resourceVersion" not in str(request.patch(None))
    # The command is what the CRD's status schema and the operator accept.
    command = Command.model_validate(patch["status"]["command"])
    assert command.action == action and command.requested_at == NOW


def test_requested_at_is_rfc3339_utc_to_the_second():
    local = NOW.astimezone(timezone(timedelta(hours=-5))).replace(microsecond=500000)
    request = prepare("promote", paused(), now=local)
    stamp = request.command()["requestedAt"]
    assert RFC3339_SECONDS_Z.match(stamp) and stamp == "2026-12-01T12:00:00Z"
    assert request.requested_at.utcoffset() == timedelta(0)
    assert request.note == ""


def test_requested_at_is_newer_than_the_last_handled_command():
    """Two commands in the same second (or a clock behind the operator's): the second
    would be skipped as already handled, so its requestedAt goes one second later."""
    ps = paused()
    ps["status"]["command"] = {"action": "promote", "requestedAt": ago(0), "requestedBy": "x"}
    ps["status"]["lastHandledCommandAt"] = ago(0)
    request = prepare("abort", ps, now=NOW.replace(microsecond=300000))
    assert request.command()["requestedAt"] == "2026-12-01T12:00:01Z"
    assert "one second after the last command" in request.note
    ps["status"]["lastHandledCommandAt"] = ago(-30)  # the operator's clock is ahead
    assert prepare("abort", ps).command()["requestedAt"] == "2026-12-01T12:00:31Z"


def test_action_names_and_summaries():
    assert prepare("promote", paused()).summary == (
        f"skip step 2/4 (pause (until promoted)) of revision {CANARY}")
    assert prepare("promoteFull", paused()).summary == (
        f"skip every remaining step and make revision {CANARY} stable")
    assert prepare("abort", paused()).summary == (
        f"scale canary revision {CANARY} to 0; stable revision {STABLE} serves alone")
    assert prepare("retry", aborted()).summary == f"start revision {CANARY} over at step 1/4"
    assert prepare("retry", aborted(migration_failed=True)).summary.endswith(
        "; its failed migration Job runs again")
    promoting = service(canary_status(4, 50, 50))
    assert prepare("promote", promoting).summary == (
        f"revision {CANARY} is already being promoted")
    assert commands.ACTIONS == ("promote", "promoteFull", "abort", "retry")


@pytest.mark.parametrize(("action", "ps", "why"), [
    ("retry", paused(), "the rollout is not aborted (phase Paused)"),
    ("retry", healthy(), "the rollout is not aborted (phase Healthy)"),
    ("promote", healthy(), "no canary is in flight (phase Healthy): nothing to promote"),
    ("promoteFull", healthy(), "no canary is in flight (phase Healthy): nothing to promote"),
    ("abort", healthy(), "no canary is in flight (phase Healthy): nothing to abort"),
    ("promote", service(None), "no canary is in flight (phase no status yet)"),
    ("promote", aborted(), "is aborted: use retry to start it over"),
    ("abort", aborted(), "is aborted already"),
])
def test_refusals(action, ps, why):
    with pytest.raises(commands.Refused, match=re.escape(why)):
        prepare(action, ps)
    forced = prepare(action, ps, force=True)
    assert forced.action == action and why in forced.forced


def test_refused_while_an_earlier_command_is_pending():
    ps = paused()
    ps["status"]["command"] = {"action": "promote", "requestedAt": ago(3), "requestedBy": "bob"}
    ps["status"]["lastHandledCommandAt"] = ago(600)
    with pytest.raises(commands.Refused, match=r"not handled yet \(promote requested by bob at "
                                               r"2026-12-01T11:59:57Z\); is the operator running"):
        prepare("abort", ps)
    del ps["status"]["lastHandledCommandAt"]  # never handled one
    with pytest.raises(commands.Refused, match="not handled yet"):
        prepare("abort", ps)
    ps["status"]["lastHandledCommandAt"] = ago(3)  # handled now
    assert prepare("abort", ps).action == "abort"


def test_requested_by_fits_the_schema():
    assert prepare("promote", paused(), user="").requested_by == "unknown"
    long_name = "system:serviceaccount:" + "x" * 300
    assert len(prepare("promote", paused(), user=long_name).requested_by) == 256


def test_unknown_action():
    with pytest.raises(ValueError, match="unknown action"):
        prepare("resume", paused())
