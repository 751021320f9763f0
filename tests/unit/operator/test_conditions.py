"""Status decisions: kstatus conditions, phases, stable transition times, no-op detection."""

from datetime import UTC, datetime, timedelta

import pytest
from payment_operator import conditions as c

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _obs(ready=3, desired=3, failure=None, exists=True, stuck=False):
    return c.Observation(
        generation=4, desired_replicas=desired, selector="a=b", revision="abc", image="img:1",
        workload=c.WorkloadState(exists=exists, generation=2, observed_generation=2,
                                 replicas=ready, ready_replicas=ready, updated_replicas=ready,
                                 available_replicas=ready, progress_deadline_exceeded=stuck,
                                 message="deadline" if stuck else ""),
        failure=failure,
    )


def _by_type(status):
    return {cond["type"]: cond for cond in status["conditions"]}


def test_all_ready_is_healthy():
    status = c.desired_status(_obs(), {}, NOW)
    conds = _by_type(status)
    assert status["phase"] == "Healthy"
    assert conds["Ready"]["status"] == "True"
    assert conds["Reconciling"]["status"] == "False"
    assert conds["Stalled"]["status"] == "False"
    assert all(x["observedGeneration"] == 4 for x in conds.values())
    assert status["observedGeneration"] == 4 and status["readyReplicas"] == 3


def test_rolling_out_is_progressing_with_a_message():
    status = c.desired_status(_obs(ready=1), {}, NOW)
    conds = _by_type(status)
    assert status["phase"] == "Progressing"
    assert conds["Ready"]["status"] == "False"
    assert conds["Reconciling"]["status"] == "True"
    assert "1/3 replicas ready" in status["message"]


def test_non_retryable_failure_stalls_and_degrades():
    failure = c.Failure("Forbidden", "exceeded quota", retryable=False)
    status = c.desired_status(_obs(failure=failure), {}, NOW)
    conds = _by_type(status)
    assert status["phase"] == "Degraded"
    assert conds["Degraded"]["reason"] == "Forbidden"
    assert conds["Stalled"]["status"] == "True"
    assert conds["Reconciling"]["status"] == "False"
    assert status["message"] == "exceeded quota"


def test_retryable_failure_degrades_but_keeps_reconciling():
    failure = c.Failure("APIServerError", "boom", retryable=True)
    conds = _by_type(c.desired_status(_obs(failure=failure), {}, NOW))
    assert conds["Stalled"]["status"] == "False"
    assert conds["Reconciling"]["status"] == "True"


def test_progress_deadline_stalls():
    conds = _by_type(c.desired_status(_obs(ready=1, stuck=True), {}, NOW))
    assert conds["Stalled"]["status"] == "True"
    assert conds["Degraded"]["reason"] == "ProgressDeadlineExceeded"


def test_unchanged_world_gives_identical_status():
    first = c.desired_status(_obs(), {}, NOW)
    again = c.desired_status(_obs(), first, NOW + timedelta(minutes=5))
    assert again == first
    assert not c.differs(again, first)


def test_transition_time_moves_only_on_flip_and_foreign_conditions_stay():
    first = c.desired_status(_obs(ready=1), {}, NOW)
    first["conditions"].append({"type": "SecretsReady", "status": "True", "reason": "Synced",
                                "message": "ok", "lastTransitionTime": "x"})
    later = NOW + timedelta(minutes=1)
    second = c.desired_status(_obs(), first, later)
    conds = _by_type(second)
    assert conds["Ready"]["lastTransitionTime"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert conds["Degraded"]["lastTransitionTime"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert conds["SecretsReady"]["lastTransitionTime"] == "x"
    assert c.differs(second, first)
