"""The canary state machine, transition by transition, with time injected."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from payment_operator.api.v1alpha1 import PaymentServiceSpec
from payment_operator.rollout import analysis, engine
from payment_operator.rollout.compare import LatencySamples, SuccessCounts
from payment_operator.rollout.state import (
    Command,
    Gate,
    Job,
    Migration,
    Observed,
    RolloutState,
    Workload,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD, NEW = "aaaaaaaaaa", "bbbbbbbbbb"


def spec(steps=None, surge=1, replicas=4, migrations=True, analysis_=None, deadline=600):
    canary = None
    if steps is not None:
        canary = {"steps": steps, "maxSurge": surge}
        if analysis_ is not None:
            canary["analysis"] = analysis_
    return PaymentServiceSpec.model_validate({
        "image": "registry.example/payment-runtime:2",
        "replicas": replicas,
        "stripe": {"secretKey": {"secretRef": {"name": "s", "key": "k"}}},
        "database": {"url": {"secretRef": {"name": "d", "key": "u"}},
                     "migrations": {"enabled": migrations}},
        "rollout": {"canary": canary, "progressDeadlineSeconds": deadline},
    })


STEPS = [{"setWeight": 10}, {"pause": {"duration": "30s"}}, {"setWeight": 50}, {"pause": {}}]
MIGRATED = Migration(NEW, f"ps-migrate-{NEW}", "Succeeded", applied_at=T0)


def wl(rev, replicas, ready=None):
    ready = replicas if ready is None else ready
    return Workload(rev, replicas, replicas, ready, image=f"img-{rev}", created_at=T0)


def observed(workloads, revision=NEW, replicas=4, **kw):
    return Observed(revision=revision, image="img", replicas=replicas,
                    job_name=f"ps-migrate-{revision}",
                    workloads={w.revision: w for w in workloads}, **kw)


def canary_state(**kw):
    base = RolloutState(stable_revision=OLD, canary_revision=NEW, step_started_at=T0,
                        migration=MIGRATED)
    return replace(base, **kw)


def test_first_revision_waits_for_its_job_then_deploys_in_full():
    plan = engine.decide(RolloutState(), spec(STEPS), observed([]), T0)
    assert plan.run_migration and plan.replicas == {} and plan.phase == "Progressing"
    assert "migration Job" in plan.message
    ran = observed([], job=Job(f"ps-migrate-{NEW}", "Succeeded"))
    plan = engine.decide(plan.state, spec(STEPS), ran, T0)
    assert plan.replicas == {NEW: 4} and plan.state.migration.phase == "Succeeded"
    plan = engine.decide(plan.state, spec(STEPS), observed([wl(NEW, 4)]), T0)
    assert plan.phase == "Healthy" and plan.state.stable_revision == NEW
    assert plan.outcome == "promoted"


def test_new_revision_starts_with_its_migration_and_no_pod():
    plan = engine.decide(RolloutState(stable_revision=OLD), spec(STEPS),
                         observed([wl(OLD, 4)]), T0)
    assert plan.state.canary_revision == NEW
    assert plan.run_migration and plan.replicas == {OLD: 4}
    assert [e.reason for e in plan.events] == ["RolloutStarted", "MigrationStarted"]
    assert plan.conditions["MigrationsApplied"][0] is False


def test_failed_migration_aborts_and_keeps_stable():
    state = RolloutState(stable_revision=OLD, canary_revision=NEW,
                         migration=Migration(NEW, "j", "Running"))
    obs = observed([wl(OLD, 4)], job=Job("j", "Failed", "BackoffLimitExceeded", "1 failed"))
    plan = engine.decide(state, spec(STEPS), obs, T0)
    assert plan.phase == "Degraded" and plan.state.aborted
    assert plan.replicas == {OLD: 4}
    assert "BackoffLimitExceeded" in plan.message and plan.outcome == "aborted"
    assert {e.reason for e in plan.events} >= {"MigrationFailed", "RolloutAborted"}
    # It stays aborted...
    again = engine.decide(plan.state, spec(STEPS), obs, T0 + timedelta(minutes=5))
    assert again.phase == "Degraded" and not again.run_migration and again.outcome is None
    # ...until retry, which deletes the failed Job and runs it again.
    retry = Command("retry", T0 + timedelta(minutes=6), "sre")
    plan = engine.decide(again.state, spec(STEPS), replace(obs, command=retry), T0)
    assert plan.delete_migration and not plan.state.aborted
    gone = observed([wl(OLD, 4)], command=retry)
    plan = engine.decide(plan.state, spec(STEPS), gone, T0)
    assert plan.run_migration and plan.state.migration.phase == "Running"


def test_closed_gate_holds_at_weight_zero():
    gate = Gate("SecretsReady", False, "ExternalSecretsAPIMissing", "install ESO")
    plan = engine.decide(RolloutState(stable_revision=OLD), spec(STEPS),
                         observed([wl(OLD, 4)], gates=(gate,)), T0)
    assert plan.replicas == {OLD: 4} and not plan.run_migration
    assert plan.phase == "Progressing" and "SecretsReady" in plan.message


@pytest.mark.parametrize(("surge", "expected"), [(1, {OLD: 4, NEW: 1}), (0, {OLD: 3, NEW: 1})])
def test_set_weight_first_adds_canary_pods_within_the_surge(surge, expected):
    plan = engine.decide(canary_state(), spec(STEPS, surge=surge), observed([wl(OLD, 4)]), T0)
    assert plan.replicas == expected
    assert plan.state.weight == 10 and plan.phase == "Progressing"


def test_set_weight_completes_when_the_split_is_ready_then_pause_runs_on_time():
    obs = observed([wl(OLD, 4), wl(NEW, 1)])
    plan = engine.decide(canary_state(), spec(STEPS), obs, T0 + timedelta(seconds=5))
    assert plan.state.step_index == 1
    assert plan.requeue_after == pytest.approx(30)
    assert "StepCompleted" in [e.reason for e in plan.events]
    mid = engine.decide(plan.state, spec(STEPS), obs, T0 + timedelta(seconds=25))
    assert mid.state.step_index == 1 and mid.requeue_after == pytest.approx(10)
    done = engine.decide(plan.state, spec(STEPS), obs, T0 + timedelta(seconds=36))
    # 50%: stable shrinks, and the canary grows into the room it left (the surge budget
    # counts replicas; the reconcile writes the scale-down first).
    assert done.state.step_index == 2 and done.replicas == {OLD: 3, NEW: 2}


def test_unready_canary_holds_the_step():
    obs = observed([wl(OLD, 4), wl(NEW, 1, ready=0)])
    plan = engine.decide(canary_state(), spec(STEPS), obs, T0 + timedelta(seconds=5))
    assert plan.state.step_index == 0 and plan.requeue_after is not None


def test_a_stable_pod_still_going_holds_the_step():
    state = canary_state(step_index=2, weight=10)
    going = Workload(OLD, 2, 3, 3, created_at=T0)  # scaled to 2, a third pod still there
    plan = engine.decide(state, spec(STEPS), observed([going, wl(NEW, 2)]), T0)
    assert plan.state.step_index == 2
    plan = engine.decide(state, spec(STEPS), observed([wl(OLD, 2), wl(NEW, 2)]), T0)
    assert plan.state.step_index == 3


def test_progress_deadline_aborts_a_step_waiting_for_pods():
    obs = observed([wl(OLD, 4), wl(NEW, 1, ready=0)])
    plan = engine.decide(canary_state(), spec(STEPS, deadline=60), obs, T0 + timedelta(seconds=61))
    assert plan.phase == "Degraded" and plan.replicas == {OLD: 4, NEW: 0}
    assert "ProgressDeadlineExceeded" in plan.state.abort_reason


def test_indefinite_pause_is_paused_and_does_not_time_out():
    state = canary_state(step_index=3, weight=50)
    obs = observed([wl(OLD, 2), wl(NEW, 2)])
    plan = engine.decide(state, spec(STEPS, deadline=60), obs, T0 + timedelta(hours=3))
    assert plan.phase == "Paused" and plan.state.paused and plan.replicas == {OLD: 2, NEW: 2}
    promote = Command("promote", T0 + timedelta(hours=3), "sre")
    plan = engine.decide(plan.state, spec(STEPS), replace(obs, command=promote),
                         T0 + timedelta(hours=3))
    assert plan.state.step_index == 4 and plan.replicas[NEW] > 2
    assert plan.state.last_command_at == promote.requested_at
    # The same command is handled once.
    again = engine.decide(plan.state, spec(STEPS), replace(obs, command=promote),
                          T0 + timedelta(hours=3))
    assert "PromoteCommand" not in [e.reason for e in again.events]


def test_promotion_scales_the_canary_up_and_only_then_makes_it_stable():
    state = canary_state(step_index=4, weight=50)
    plan = engine.decide(state, spec(STEPS), observed([wl(OLD, 2), wl(NEW, 2)]), T0)
    assert plan.replicas == {OLD: 2, NEW: 3} and plan.state.canary_revision == NEW
    plan = engine.decide(plan.state, spec(STEPS), observed([wl(OLD, 0), wl(NEW, 4)]), T0)
    assert plan.phase == "Healthy" and plan.state.stable_revision == NEW
    assert plan.state.canary_revision is None and plan.replicas == {NEW: 4, OLD: 0}


def test_abort_command_scales_canary_to_zero_at_once():
    obs = observed([wl(OLD, 2), wl(NEW, 2)], command=Command("abort", T0, "sre"))
    plan = engine.decide(canary_state(step_index=3, weight=50), spec(STEPS), obs, T0)
    assert plan.replicas == {OLD: 4, NEW: 0} and plan.phase == "Degraded"
    assert "aborted by sre" in plan.message


def test_promote_full_skips_every_step():
    obs = observed([wl(OLD, 4)], command=Command("promoteFull", T0, "argocd"))
    plan = engine.decide(canary_state(), spec(STEPS), obs, T0)
    assert plan.state.step_index == len(STEPS)


def test_back_to_the_stable_revision_skips_the_steps():
    obs = observed([wl(OLD, 2), wl(NEW, 2)], revision=OLD)
    plan = engine.decide(canary_state(step_index=3, weight=50), spec(STEPS), obs, T0)
    assert plan.replicas == {OLD: 4, NEW: 0} and plan.outcome == "rolledBack"
    assert plan.state.canary_revision is None


def test_a_newer_revision_supersedes_the_canary():
    third = "cccccccccc"
    obs = observed([wl(OLD, 2), wl(NEW, 2)], revision=third)
    plan = engine.decide(canary_state(step_index=3, weight=50), spec(STEPS), obs, T0)
    assert plan.state.canary_revision == third and plan.outcome == "superseded"
    assert plan.replicas == {OLD: 4, NEW: 0} and plan.run_migration


def test_autoscaler_change_recomputes_the_split_at_the_same_weight():
    state = canary_state(step_index=3, weight=50)
    plan = engine.decide(state, spec(STEPS), observed([wl(OLD, 2), wl(NEW, 2)], replicas=8), T0)
    assert plan.replicas[OLD] == 4 and plan.replicas[OLD] + plan.replicas[NEW] <= 9


def test_no_canary_strategy_replaces_at_once_after_the_migration():
    plan = engine.decide(RolloutState(stable_revision=OLD, canary_revision=NEW,
                                      migration=MIGRATED), spec(None),
                         observed([wl(OLD, 4)]), T0)
    assert plan.replicas == {OLD: 4, NEW: 1}


def test_history_keeps_two_old_revisions():
    old = [Workload(f"{i:010d}", 0, 0, 0, created_at=T0 + timedelta(minutes=i)) for i in range(4)]
    plan = engine.decide(RolloutState(stable_revision=NEW), spec(STEPS),
                         observed([wl(NEW, 4), *old]), T0)
    assert plan.replicas == {NEW: 4, "0000000003": 0, "0000000002": 0}


ANALYSIS = {"interval": "10s", "failureLimit": 0, "metrics": [
    {"name": "ok", "web": {"url": "http://m/", "jsonPath": "v"},
     "thresholdRange": {"min": 0.9}}]}


def test_analysis_step_measures_when_due_and_aborts_on_failure():
    s = spec([{"setWeight": 10}, {"analysis": {"count": 2}}], analysis_=ANALYSIS)
    state = canary_state(step_index=1, weight=10)
    obs = observed([wl(OLD, 4), wl(NEW, 1)])
    plan = engine.decide(state, s, obs, T0)
    assert plan.measure
    bad = replace(obs, measurements=(analysis.MetricResult("ok", 0.5),))
    plan = engine.decide(state, s, bad, T0)
    assert plan.phase == "Degraded" and "AnalysisFailed" in plan.state.abort_reason
    assert plan.replicas == {OLD: 4, NEW: 0}


def test_analysis_step_passes_after_count_measurements():
    s = spec([{"setWeight": 10}, {"analysis": {"count": 2}}], analysis_=ANALYSIS)
    obs = observed([wl(OLD, 4), wl(NEW, 1)])
    good = replace(obs, measurements=(analysis.MetricResult("ok", 0.95),))
    plan = engine.decide(canary_state(step_index=1, weight=10), s, good, T0)
    assert plan.state.step_index == 1 and plan.requeue_after == pytest.approx(10)
    assert not engine.decide(plan.state, s, obs, T0 + timedelta(seconds=5)).measure
    plan = engine.decide(plan.state, s, good, T0 + timedelta(seconds=10))
    assert plan.state.step_index == 2  # on to promotion


BUILTIN = {"interval": "10s", "builtin": "paymentSuccess",
           "prometheusAddress": "http://prometheus:9090", "failureLimit": 0}


def _builtin_round(canary, stable, latency=(0.1,) * 6):
    return (
        analysis.MetricResult(analysis.SUCCESS_RATIO, None, canary=SuccessCounts(*canary),
                              stable=SuccessCounts(*stable)),
        analysis.MetricResult(analysis.P99_LATENCY, None, canary=LatencySamples(latency),
                              stable=LatencySamples(latency)),
    )


def test_builtin_analysis_aborts_a_failing_canary_naming_both_ratios_and_sizes():
    s = spec([{"setWeight": 10}, {"analysis": {"count": 2}}], analysis_=BUILTIN)
    obs = observed([wl(OLD, 4), wl(NEW, 1)],
                   measurements=_builtin_round((3, 60), (118, 120)))
    plan = engine.decide(canary_state(step_index=1, weight=10), s, obs, T0)
    assert plan.phase == "Degraded" and plan.outcome == "aborted"
    assert "canary 0.05 vs stable 0.9833 (payments 60 vs 120)" in plan.message
    assert plan.replicas == {OLD: 4, NEW: 0}
    [aborted] = [e for e in plan.events if e.reason == "RolloutAborted"]
    assert "canary 0.05 vs stable 0.9833 (payments 60 vs 120)" in aborted.message


def test_builtin_analysis_lets_a_healthy_canary_go_on():
    s = spec([{"setWeight": 10}, {"analysis": {"count": 1}}], analysis_=BUILTIN)
    obs = observed([wl(OLD, 4), wl(NEW, 1)],
                   measurements=_builtin_round((99, 100), (198, 200)))
    plan = engine.decide(canary_state(step_index=1, weight=10), s, obs, T0)
    assert plan.state.step_index == 2  # on to promotion


def test_builtin_analysis_without_traffic_pauses_inconclusive():
    s = spec([{"setWeight": 10}, {"analysis": {"count": 3}}],
             analysis_={**BUILTIN, "inconclusiveLimit": 0})
    obs = observed([wl(OLD, 4), wl(NEW, 1)], measurements=_builtin_round((0, 0), (0, 0), ()))
    plan = engine.decide(canary_state(step_index=1, weight=10), s, obs, T0)
    assert plan.phase == "Paused" and "inconclusive" in plan.message
    assert "fewer than 50 payments on a side (canary 0, stable 0)" in plan.message
