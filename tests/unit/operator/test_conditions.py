"""Status decisions: kstatus conditions per phase, gates, stable transition times, no-op skip."""

from datetime import UTC, datetime, timedelta

import pytest
from payment_operator import conditions as c

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GATES = {"SecretsReady": (True, "SecretRefs", "refs"), "MigrationsApplied": (True, "Done", "ok")}


def _obs(phase="Healthy", message="3/3 replicas ready", failure=None, abort_reason="",
         gates=None, rollout=None):
    return c.Observation(
        generation=4, selector="a=b", phase=phase, message=message, replicas=3,
        ready_replicas=3, updated_replicas=3, rollout=rollout or {"stableRevision": "abc"},
        gates=GATES if gates is None else gates, abort_reason=abort_reason, failure=failure,
    )


def _by_type(status):
    return {cond["type"]: cond for cond in status["conditions"]}


def _statuses(status):
    return {t: cond["status"] for t, cond in _by_type(status).items()}


def test_healthy_is_ready_and_done():
    status = c.desired_status(_obs(), {}, NOW)
    assert status["phase"] == "Healthy" and status["message"] == "3/3 replicas ready"
    assert _statuses(status) == {"Ready": "True", "Reconciling": "False", "Progressing": "False",
                                 "Degraded": "False", "Stalled": "False",
                                 "SecretsReady": "True", "MigrationsApplied": "True"}
    assert all(cond["observedGeneration"] == 4 for cond in status["conditions"])
    assert status["stableRevision"] == "abc"


def test_progressing_is_reconciling_with_the_engines_message():
    status = c.desired_status(_obs("Progressing", "step 1/3 (setWeight 10)"), {}, NOW)
    conds = _by_type(status)
    assert status["phase"] == "Progressing"
    assert conds["Ready"]["status"] == "False" and conds["Reconciling"]["status"] == "True"
    assert conds["Progressing"]["message"] == "step 1/3 (setWeight 10)"


def test_paused_is_neither_ready_nor_reconciling_nor_degraded():
    status = c.desired_status(_obs("Paused", "promote to continue"), {}, NOW)
    conds = _by_type(status)
    assert status["phase"] == "Paused"
    assert conds["Ready"]["reason"] == "Paused" and conds["Reconciling"]["status"] == "False"
    assert conds["Degraded"]["status"] == "False" and conds["Stalled"]["status"] == "False"


def test_aborted_rollout_is_degraded_and_stalled_with_the_abort_reason():
    obs = _obs("Degraded", "rollout aborted (AnalysisFailed: x=0.5 below min 0.9)",
               abort_reason="AnalysisFailed: x=0.5 below min 0.9")
    conds = _by_type(c.desired_status(obs, {}, NOW))
    assert conds["Degraded"]["status"] == "True" and conds["Degraded"]["reason"] == "AnalysisFailed"
    assert conds["Stalled"]["status"] == "True" and "0.5" in conds["Stalled"]["message"]


def test_closed_gate_is_its_own_condition():
    gates = {"SecretsReady": (False, "ExternalSecretsAPIMissing", "install ESO")}
    conds = _by_type(c.desired_status(_obs("Progressing", "waits", gates=gates), {}, NOW))
    assert conds["SecretsReady"]["status"] == "False"
    assert conds["SecretsReady"]["reason"] == "ExternalSecretsAPIMissing"


def test_non_retryable_failure_stalls_and_degrades_whatever_the_phase():
    failure = c.Failure("Forbidden", "deployments is forbidden", retryable=False)
    status = c.desired_status(_obs(failure=failure), {}, NOW)
    conds = _by_type(status)
    assert status["phase"] == "Degraded" and status["message"] == "deployments is forbidden"
    assert conds["Stalled"]["status"] == "True" and conds["Ready"]["status"] == "False"
    assert conds["Degraded"]["reason"] == "Forbidden"


def test_retryable_failure_degrades_but_keeps_reconciling():
    failure = c.Failure("Conflict", "try again", retryable=True)
    conds = _by_type(c.desired_status(_obs(failure=failure), {}, NOW))
    assert conds["Degraded"]["status"] == "True" and conds["Stalled"]["status"] == "False"
    assert conds["Reconciling"]["status"] == "True"


def test_unchanged_world_gives_identical_status():
    first = c.desired_status(_obs(), {}, NOW)
    again = c.desired_status(_obs(), first, NOW + timedelta(minutes=5))
    assert again == first
    assert not c.differs(again, first)


def test_nulls_clear_fields_and_count_as_absent():
    desired = {"canary": {"stepIndex": 1, "abortReason": None}, "canaryImage": None}
    assert not c.differs(desired, {"canary": {"stepIndex": 1}})
    assert c.differs(desired, {"canary": {"stepIndex": 1}, "canaryImage": "img:2"})


def test_transition_time_moves_only_on_flip_and_foreign_conditions_stay():
    first = c.desired_status(_obs("Progressing", "rolling"), {}, NOW)
    first["conditions"].append({"type": "TopicsReady", "status": "True", "reason": "Ready",
                                "message": "ok", "lastTransitionTime": "x"})
    later = NOW + timedelta(minutes=1)
    second = c.desired_status(_obs(), first, later)
    conds = _by_type(second)
    assert conds["Ready"]["lastTransitionTime"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert conds["Degraded"]["lastTransitionTime"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert conds["TopicsReady"]["lastTransitionTime"] == "x"
    assert c.differs(second, first)


def test_gate_flips_are_found():
    old = [{"type": "SecretsReady", "status": "False"}, {"type": "Ready", "status": "False"}]
    new = [{"type": "SecretsReady", "status": "True"}, {"type": "Ready", "status": "True"}]
    assert [cond["type"] for cond in c.flipped(old, new)] == ["SecretsReady"]
