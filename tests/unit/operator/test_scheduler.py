"""Requeue at a time: one pending wake-up per object, the earliest wins, cancel on delete."""

import contextvars
import threading
import time

import pytest
from payment_operator.scheduler import Scheduler

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

KEY = ("ns", "svc")
SHORT = 0.05


class Fired:
    """Records when actions ran; ``wait`` blocks until ``count`` of them did."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self._cond = threading.Condition()

    def action(self, name: str):
        def run() -> None:
            with self._cond:
                self.times.append((name, time.monotonic()))
                self._cond.notify_all()
        return run

    def wait(self, count: int, timeout: float = 5) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.times) >= count, timeout)

    def names(self) -> list[str]:
        return [name for name, _ in self.times]


@pytest.fixture
def scheduler():
    s = Scheduler()
    yield s
    s.close()


def test_the_action_runs_once_after_the_delay(scheduler):
    fired = Fired()
    started = time.monotonic()
    assert scheduler.schedule(KEY, SHORT, fired.action("a"))
    assert scheduler.due_in(KEY) is not None
    assert fired.wait(1)
    assert fired.times[0][1] - started >= SHORT
    time.sleep(3 * SHORT)
    assert fired.names() == ["a"]
    assert scheduler.due_in(KEY) is None  # nothing pending once it ran


def test_the_earliest_wake_up_wins(scheduler):
    fired = Fired()
    assert scheduler.schedule(KEY, 10, fired.action("late"))
    assert scheduler.schedule(KEY, SHORT, fired.action("early"))  # replaces the later one
    assert not scheduler.schedule(KEY, 5, fired.action("later"))  # an earlier one is pending
    assert fired.wait(1)
    time.sleep(3 * SHORT)
    assert fired.names() == ["early"]
    assert scheduler.due_in(KEY) is None  # the replaced timers are gone too


def test_objects_have_their_own_wake_ups(scheduler):
    fired = Fired()
    scheduler.schedule(("ns", "a"), SHORT, fired.action("a"))
    scheduler.schedule(("ns", "b"), 2 * SHORT, fired.action("b"))
    assert fired.wait(2)
    assert fired.names() == ["a", "b"]


def test_cancel_drops_the_pending_wake_up(scheduler):
    fired = Fired()
    scheduler.schedule(KEY, 2 * SHORT, fired.action("a"))
    scheduler.cancel(KEY)
    scheduler.cancel(("ns", "unknown"))  # no wake-up: nothing to do
    assert scheduler.due_in(KEY) is None
    assert not fired.wait(1, timeout=6 * SHORT)
    assert scheduler.schedule(KEY, SHORT, fired.action("b"))  # a new one may follow
    assert fired.wait(1)
    assert fired.names() == ["b"]


def test_close_cancels_everything_and_refuses_more():
    scheduler = Scheduler()
    fired = Fired()
    scheduler.schedule(KEY, 2 * SHORT, fired.action("a"))
    scheduler.close()
    assert not scheduler.schedule(KEY, SHORT, fired.action("b"))
    assert not fired.wait(1, timeout=6 * SHORT)


def test_the_action_runs_in_the_context_it_was_scheduled_from(scheduler):
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    seen: list[str] = []
    done = threading.Event()

    def action() -> None:
        seen.append(var.get("unset"))
        done.set()

    token = var.set("handler's")
    try:
        scheduler.schedule(KEY, SHORT, action)
    finally:
        var.reset(token)
    assert done.wait(5)
    assert seen == ["handler's"]


def test_a_failing_action_is_logged_and_later_wake_ups_still_run(scheduler, caplog):
    fired = Fired()

    def boom() -> None:
        raise RuntimeError("boom")

    scheduler.schedule(KEY, SHORT, boom)
    deadline = time.monotonic() + 5
    while "requeue of" not in caplog.text and time.monotonic() < deadline:
        time.sleep(SHORT)
    assert "requeue of ('ns', 'svc') failed" in caplog.text
    scheduler.schedule(KEY, SHORT, fired.action("after"))
    assert fired.wait(1)


def test_a_timer_that_loses_the_race_with_cancel_or_replace_does_nothing(scheduler):
    """A timer thread may already be firing when its wake-up is cancelled or replaced."""
    fired = Fired()
    scheduler.schedule(KEY, 10, fired.action("cancelled"))
    stale = scheduler._wakeups[KEY]
    scheduler.cancel(KEY)
    scheduler._fire(KEY, stale)
    scheduler.schedule(KEY, 10, fired.action("pending"))
    scheduler._fire(KEY, stale)
    assert fired.names() == []
    assert scheduler.due_in(KEY) is not None  # the pending wake-up is untouched
