"""The Argo Rollouts comparison's step latency: from a canary ready at its target to the next
replica change of the same owner (pure logic over recorded watch events; nothing is run)."""

import pytest

from bench.rollouts_compare import percentile, step_latencies

pytestmark = pytest.mark.unit

NEW, OLD = "img:2", "img:1"


def ev(at, name, owner, spec, ready, image, kind="MODIFIED"):
    return (at, kind, [name, owner, str(spec), "" if ready is None else str(ready), image])


def test_each_step_is_timed_from_canary_readiness_to_the_next_replica_change():
    events = [
        ev(0.0, "stable", "a", 4, 4, OLD, "ADDED"),  # before the image change: not counted
        ev(1.0, "canary", "a", 1, None, NEW, "ADDED"),
        ev(1.2, "canary", "a", 1, 1, NEW),  # ready at its target: the clock starts
        ev(1.3, "canary", "a", 1, 1, NEW),  # a status-only update changes nothing
        ev(1.5, "stable", "a", 3, 4, OLD),  # the next step: 0.3 s
        ev(1.6, "stable", "a", 3, 3, OLD),  # stable ready: not a canary, no clock
        ev(1.7, "canary", "a", 4, 1, NEW),
        ev(2.0, "canary", "a", 4, 4, NEW),
        ev(2.1, "stable", "a", 3, 3, OLD, "DELETED"),  # deleting a live child is a change
    ]
    assert step_latencies(events, NEW, since=0.5) == pytest.approx([0.3, 0.1])


def test_owners_are_timed_apart_and_a_last_step_without_a_change_is_no_sample():
    events = [
        ev(0.0, "b-stable", "b", 4, 4, OLD),
        ev(1.0, "a-canary", "a", 1, 1, NEW),
        ev(1.1, "b-canary", "b", 2, 2, NEW),
        ev(1.4, "b-stable", "b", 2, 4, OLD),  # b's change answers b's clock only
        ev(2.0, "a-canary", "a", 1, 1, NEW),
    ]
    assert step_latencies(events, NEW, since=0.5) == pytest.approx([0.3])


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile([0.4], 95) == 0.4
