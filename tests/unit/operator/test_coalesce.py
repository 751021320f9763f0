"""Coalescing of triggers for one object: no trigger is lost, a blocking caller gets a real pass.

The interleavings are forced with the coalescer's ``trace`` hook (called by the thread that
is about to take the lock, or about to leave with nothing pending) and threading events, so
each test runs the same schedule every time.
"""

import threading
from collections.abc import Callable

import pytest
from payment_operator.coalesce import Coalescer

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

KEY = ("ns", "svc")
TIMEOUT = 5


class Log:
    """What happened, in order: "trigger <who>" and "pass <n> by <who> prune=<flag>"."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, line: str) -> int:
        with self._lock:
            self.lines.append(line)
            return len(self.lines) - 1

    def passes(self) -> list[str]:
        return [line for line in self.lines if line.startswith("pass")]


def _thread(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _work(log: Log, hold: Callable[[int], None] = lambda n: None) -> Callable[[bool], str]:
    """A fake pass: logs itself, optionally holds (by number), returns its own name."""

    def work(prune: bool) -> str:
        n = len(log.passes()) + 1
        line = f"pass {n} by {threading.current_thread().name} prune={prune}"
        log.add(line)
        hold(n)
        return line

    return work


def test_a_trigger_at_the_last_pending_check_is_run_by_someone():
    """B arrives just as A has found nothing more to do: A must not leave B's trigger behind."""
    log = Log()
    results: dict[str, list[str]] = {}
    fired = threading.Event()
    coalescer: Coalescer[str] = Coalescer(trace=lambda point: at(point))
    work = _work(log)

    def trigger_b() -> None:
        log.add("trigger B")
        results["B"] = coalescer.run(KEY, work, prune=False, wait=False)

    def at(point: str) -> None:
        if point == "idle" and threading.current_thread().name == "A" and not fired.is_set():
            fired.set()
            b = _thread("B", trigger_b)
            b.join(TIMEOUT)  # B never blocks: it either runs the pass or marks it pending

    def trigger_a() -> None:
        results["A"] = coalescer.run(KEY, work, prune=False, wait=False)

    _thread("A", trigger_a).join(TIMEOUT)

    assert fired.is_set()
    trigger = log.lines.index("trigger B")
    assert any(line.startswith("pass") for line in log.lines[trigger:]), log.lines
    assert len(log.passes()) == 2  # and no more: the two triggers cost one pass each
    assert results["A"] + results["B"] == log.passes()


def test_a_blocking_caller_gets_a_pass_that_started_after_its_trigger():
    """C waits for the lock while A does C's work: C must still get a pass of its own, with
    its real result (on_change raises for a failure, so Kopf retries it with back-off)."""
    log = Log()
    results: dict[str, list[str]] = {}
    in_first_pass, finish_first_pass = threading.Event(), threading.Event()
    c_waits, a_done = threading.Event(), threading.Event()

    def hold(n: int) -> None:
        if n == 1:
            in_first_pass.set()
            finish_first_pass.wait(TIMEOUT)

    def at(point: str) -> None:
        if point == "acquire" and threading.current_thread().name == "C" and not c_waits.is_set():
            c_waits.set()
            a_done.wait(TIMEOUT)  # A takes the lock first and goes round for C's trigger

    coalescer: Coalescer[str] = Coalescer(trace=at)
    work = _work(log, hold)

    def trigger_a() -> None:
        results["A"] = coalescer.run(KEY, work, prune=False, wait=False)
        a_done.set()

    def trigger_c() -> None:
        log.add("trigger C")
        results["C"] = coalescer.run(KEY, work, prune=True, wait=True)

    a = _thread("A", trigger_a)
    assert in_first_pass.wait(TIMEOUT)
    c = _thread("C", trigger_c)
    assert c_waits.wait(TIMEOUT)
    finish_first_pass.set()
    a.join(TIMEOUT)
    c.join(TIMEOUT)

    assert results["C"], f"C got a coalesced answer: {log.lines}"
    trigger = log.lines.index("trigger C")
    own = log.lines.index(results["C"][-1])
    assert own > trigger
    assert results["C"][-1].endswith("by C prune=True")  # C's own pass does what C asked


def _during_first_pass(log: Log, calls: list[Callable[[], None]]) -> Callable[[bool], str]:
    """A fake pass that, the first time, makes ``calls`` (other triggers) and then finishes."""

    def hold(n: int) -> None:
        if n == 1:
            for call in calls:
                call()

    return _work(log, hold)


def test_a_burst_during_a_pass_costs_one_more_pass_with_the_sticky_prune():
    log = Log()
    coalescer: Coalescer[str] = Coalescer()
    burst: list[list[str]] = []

    def trigger(prune: bool) -> Callable[[], None]:
        def call() -> None:
            t = _thread("child", lambda: burst.append(
                coalescer.run(KEY, work, prune=prune, wait=False)))
            t.join(TIMEOUT)
        return call

    work = _during_first_pass(log, [trigger(False), trigger(True), trigger(False)])
    results = coalescer.run(KEY, work, prune=False, wait=False)

    assert burst == [[], [], []]  # each found the pass running and left its work to it
    assert results == log.passes() == ["pass 1 by MainThread prune=False",
                                       "pass 2 by MainThread prune=True"]
    assert len(coalescer) == 0  # nothing kept once nobody is inside


def test_a_trigger_during_a_pass_that_raises_is_still_run():
    log = Log()
    coalescer: Coalescer[str] = Coalescer()

    def work(prune: bool) -> str:
        n = len(log.passes()) + 1
        log.add(f"pass {n}")
        if n == 1:
            _thread("child", lambda: coalescer.run(KEY, work, prune=False, wait=False)).join(
                TIMEOUT)
            raise RuntimeError("API down")
        return f"pass {n}"

    # The newer pass succeeded, so the caller gets its result rather than the older error.
    assert coalescer.run(KEY, work, prune=False, wait=True) == ["pass 2"]


def test_the_error_of_the_last_pass_is_raised():
    coalescer: Coalescer[str] = Coalescer()

    def work(prune: bool) -> str:
        raise RuntimeError("API down")

    with pytest.raises(RuntimeError, match="API down"):
        coalescer.run(KEY, work, prune=False, wait=True)
    assert len(coalescer) == 0


def test_other_keys_do_not_wait():
    coalescer: Coalescer[str] = Coalescer()
    inside, release = threading.Event(), threading.Event()

    def slow(prune: bool) -> str:
        inside.set()
        release.wait(TIMEOUT)
        return "slow"

    t = _thread("A", lambda: coalescer.run(KEY, slow, prune=False, wait=True))
    assert inside.wait(TIMEOUT)
    assert coalescer.run(("ns", "other"), lambda prune: "other", prune=False, wait=True) == [
        "other"]
    assert coalescer.run(KEY, lambda prune: "never", prune=False, wait=False) == []
    release.set()
    t.join(TIMEOUT)
