"""Which drift-timer passes read afresh (:mod:`payment_operator.fresh_reads`), and that the
timer's passes really read the cache or the API server as it says."""

import pytest
from payment_operator import handlers
from payment_operator.fresh_reads import FreshReads
from payment_operator.settings import Settings
from payment_operator.state import OperatorState

from tests.unit.operator.fake_kube import FakeKube
from tests.unit.operator.test_handlers import NAME, _add_ps, _kopf_kwargs

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_object_reads_afresh_once_every_fresh_seconds():
    clock = Clock()
    fresh = FreshReads(600, clock=clock)
    assert not fresh.due("a")  # its first timer pass: the watches' listing was the read
    clock.now += 599
    assert not fresh.due("a")
    clock.now += 1
    assert fresh.due("a") and fresh.due("a")  # due until a fresh pass completes
    fresh.done("a")
    assert not fresh.due("a")
    clock.now += 600
    assert fresh.due("a") and not fresh.due("b")  # each object has its own clock
    fresh.forget("a")
    assert not fresh.due("a")  # forgotten: a new object's first pass


def _reconciled(monkeypatch, resync_seconds: float) -> tuple[OperatorState, Clock, dict]:
    """A state on a fake clock with one PaymentService after its first pass (stored body)."""
    monkeypatch.setattr(handlers, "_event", lambda *args: None)
    state = OperatorState.from_settings(
        Settings(resync_seconds=resync_seconds, drift_fresh_seconds=600, standalone=True),
        FakeKube())
    clock = Clock()
    state.fresh_reads = FreshReads(600, clock=clock)
    obj = _add_ps(state)
    handlers.on_change(state, **_kopf_kwargs(obj, reason="create", retry=0))
    return state, clock, state.kube.stored("PaymentService", obj["metadata"]["namespace"], NAME)


def test_the_timers_passes_read_the_cache_and_now_and_then_every_child(monkeypatch):
    state, clock, obj = _reconciled(monkeypatch, 7)
    try:
        # Fill the cache as the watches would: every child the pass made.
        for (kind, _, _), child in list(state.kube.objects.items()):
            if kind != "PaymentService":
                state.children.observe(None, child)

        def child_gets() -> list[str]:
            """GETs of children that exist (one never seen, such as the migration Job of a
            service without migrations, is a GET even with the cache)."""
            there = {kind for kind, _, _ in state.kube.objects}
            return [kind for verb, kind, _ in state.kube.calls
                    if verb == "get" and kind != "PaymentService" and kind in there]

        state.kube.calls.clear()
        handlers.resync(state, **_kopf_kwargs(obj))
        assert child_gets() == []  # from the cache
        assert not state.kube.writes()
        clock.now += 600
        handlers.resync(state, **_kopf_kwargs(obj))
        assert {"Deployment", "ConfigMap", "Service"} <= set(child_gets())  # afresh
        assert not state.kube.writes()
        state.kube.calls.clear()
        handlers.resync(state, **_kopf_kwargs(obj))
        assert child_gets() == []  # the next fresh pass is 600 s away again
        # A deletion no watch delivered is seen (and undone) by the next fresh pass.
        namespace = obj["metadata"]["namespace"]
        (cm,) = [k for k in state.kube.objects if k[0] == "ConfigMap" and k[1] == namespace]
        del state.kube.objects[cm]
        handlers.resync(state, **_kopf_kwargs(obj))
        assert cm not in state.kube.objects  # the cache still has it: not seen yet
        clock.now += 600
        handlers.resync(state, **_kopf_kwargs(obj))
        assert cm in state.kube.objects
        handlers.on_delete(state, **_kopf_kwargs(obj))
        assert not state.fresh_reads.due((namespace, NAME))  # forgotten with the object
    finally:
        state.scheduler.close()


def test_the_time_since_the_last_pass_is_kept_per_object():
    clock = Clock()
    reads = FreshReads(600, clock=clock)
    assert not reads.passed_within("a", 60)
    reads.passed("a")
    clock.now += 59
    assert reads.passed_within("a", 60) and not reads.passed_within("b", 60)
    clock.now += 1
    assert not reads.passed_within("a", 60)
    reads.passed("a")
    reads.forget("a")
    assert not reads.passed_within("a", 60)


@pytest.mark.parametrize(("phase", "skipped"), [
    ("Progressing", True), (None, True), ("Healthy", False), ("Degraded", False),
    ("Paused", False),
])
def test_a_timer_pass_right_after_a_pass_is_skipped_only_while_progressing(
        monkeypatch, phase, skipped):
    state, clock, body = _reconciled(monkeypatch, 60)
    try:
        body["status"]["phase"] = phase  # what Kopf's copy of the object says
        clock.now += 30
        state.kube.calls.clear()
        handlers.resync(state, **_kopf_kwargs(body))
        assert (state.kube.calls == []) is skipped
        clock.now += 30  # an interval after the last pass: the timer's pass runs
        state.kube.calls.clear()
        handlers.resync(state, **_kopf_kwargs(body))
        assert state.kube.calls
        clock.now += 30
        state.fresh_reads.due = lambda key: True  # a fresh read is never skipped
        state.kube.calls.clear()
        handlers.resync(state, **_kopf_kwargs(body))
        assert state.kube.calls
    finally:
        state.scheduler.close()
