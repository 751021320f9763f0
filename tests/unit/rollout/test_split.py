"""The replica split of a basic canary (the README's table) and the pace of moving there."""

from __future__ import annotations

import pytest
from payment_operator.rollout import split
from payment_operator.rollout.split import Split

pytestmark = pytest.mark.unit

# (replicas, maxSurge, weight) -> (stable, canary): the table documented in the README.
TABLE = [
    (4, 1, 10, (4, 1)), (4, 1, 50, (2, 2)), (4, 1, 100, (0, 4)),
    (4, 0, 10, (3, 1)), (4, 0, 50, (2, 2)), (4, 0, 90, (1, 3)),
    (1, 0, 10, (1, 0)), (1, 0, 99, (1, 0)), (1, 0, 100, (0, 1)),
    (1, 1, 10, (1, 1)), (2, 0, 10, (1, 1)), (2, 1, 75, (1, 2)),
    (3, 1, 50, (2, 2)), (10, 0, 25, (8, 2)), (10, 1, 90, (1, 9)),
    (5, 2, 0, (5, 0)), (0, 1, 50, (0, 0)),
]


@pytest.mark.parametrize(("replicas", "surge", "weight", "expected"), TABLE)
def test_target_matches_the_documented_table(replicas, surge, weight, expected):
    assert split.target(replicas, weight, surge) == Split(*expected)


@pytest.mark.parametrize("replicas", range(1, 13))
@pytest.mark.parametrize("surge", [0, 1, 2])
@pytest.mark.parametrize("weight", [1, 10, 33, 50, 67, 90, 99])
def test_partial_weights_keep_both_sides_within_the_surge_budget(replicas, surge, weight):
    got = split.target(replicas, weight, surge)
    assert replicas <= got.total <= replicas + surge
    assert got.stable >= 1
    if not (replicas == 1 and surge == 0):
        assert got.canary >= 1


def _walk(replicas, surge, start, want, steps=20):
    """Advance pass by pass, every pod becoming ready at once; return every state seen."""
    seen, current = [start], start
    for _ in range(steps):
        nxt = split.advance(current, current.canary, want, replicas, surge)
        if nxt == current:
            break
        seen.append(nxt)
        current = nxt
    return seen


@pytest.mark.parametrize("surge", [0, 1, 2])
@pytest.mark.parametrize(("start", "weight"), [((4, 0), 10), ((4, 1), 50), ((2, 2), 100)])
def test_advance_reaches_the_target_without_breaking_the_budget(surge, start, weight):
    replicas = 4
    want = split.target(replicas, weight, surge)
    seen = _walk(replicas, surge, Split(*start), want)
    assert seen[-1] == want
    for state in seen[1:]:
        assert state.total <= replicas + surge
        assert state.total >= replicas - (0 if surge else 1)


def test_stable_waits_for_ready_canary_pods_before_scaling_down():
    # The canary was asked for 2 pods but none is ready: stable stays at 4.
    got = split.advance(Split(4, 1), 0, Split(2, 2), 4, 1)
    assert got == Split(4, 1)
    # One canary pod ready: stable gives one up, and the canary takes its room at once.
    assert split.advance(Split(4, 1), 1, Split(2, 2), 4, 1) == Split(3, 2)


def test_a_scale_down_makes_room_for_the_canary_in_the_same_move():
    # surge 1: 4 + 1 -> 3 + 2 in one move, never more than 5 replicas asked for.
    assert split.advance(Split(4, 1), 1, Split(2, 2), 4, 1).total == 5
    # surge 0: one stable replica gives way to one canary replica (3 ready meanwhile).
    assert split.advance(Split(4, 0), 0, Split(2, 2), 4, 0) == Split(3, 1)


def test_abort_is_immediate():
    assert split.advance(Split(2, 2), 2, Split(4, 0), 4, 1) == Split(4, 0)


def test_autoscaler_growth_never_exceeds_replicas_plus_surge():
    # replicas 4 -> 8 at weight 50, surge 1: stable scales up at once, canary within budget.
    got = split.advance(Split(2, 2), 2, split.target(8, 50, 1), 8, 1)
    assert got.total <= 9 and got.stable == 4


@pytest.mark.parametrize(("stable", "canary", "expected"), [(0, 0, 0), (4, 1, 20), (2, 2, 50),
                                                            (0, 3, 100), (3, 1, 25)])
def test_actual_weight_is_the_ready_pod_ratio(stable, canary, expected):
    assert split.actual_weight(stable, canary) == expected
