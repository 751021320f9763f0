"""The built-in paymentSuccess judge, table-driven: canary against stable.

Cases named by the issue: equal, clearly worse, marginally worse (within the tolerance, or
not significant), small samples, zero traffic, NaN; plus the Mann-Whitney p-value against
values worked out by hand and the folding into a round by :func:`analysis.record`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from payment_operator.api import v1alpha1 as api
from payment_operator.rollout import analysis, compare
from payment_operator.rollout.compare import LatencySamples, SuccessCounts

pytestmark = pytest.mark.unit

NAN = math.nan
DEFAULTS = {"max_drop": 0.01, "significance": 0.05, "min_payments": 50}

SUCCESS_CASES = [
    # id, canary (successes, total), stable, outcome
    ("equal", (990, 1000), (990, 1000), "pass"),
    ("equal-all-success", (200, 200), (200, 200), "pass"),
    ("clearly-worse", (10, 100), (100, 100), "fail"),
    ("all-failing", (0, 60), (60, 60), "fail"),
    ("worse-by-five-points", (950, 1000), (1000, 1000), "fail"),
    ("marginally-worse-within-tolerance", (985, 1000), (990, 1000), "pass"),
    ("worse-beyond-tolerance-but-not-significant", (57, 60), (60, 60), "pass"),
    ("canary-better", (1000, 1000), (950, 1000), "pass"),
    ("small-canary", (0, 49), (500, 500), "no-data"),
    ("small-stable", (500, 500), (0, 10), "no-data"),
    ("zero-traffic", (0, 0), (0, 0), "no-data"),
    ("nan-canary", (NAN, NAN), (100, 100), "no-data"),
    ("nan-stable", (100, 100), (NAN, 100), "no-data"),
    # Prometheus extrapolates increase(): 49.6 payments are 50.
    ("extrapolated-counts", (49.6, 49.6), (49.7, 50.2), "pass"),
]


@pytest.mark.parametrize(("canary", "stable", "outcome"),
                         [c[1:] for c in SUCCESS_CASES], ids=[c[0] for c in SUCCESS_CASES])
def test_success_ratio(canary, stable, outcome):
    found = compare.success_ratio(SuccessCounts(*canary), SuccessCounts(*stable), **DEFAULTS)
    assert found.outcome == outcome, found.reason
    assert found.test == compare.SUCCESS_TEST
    if outcome == "no-data":
        assert found.p_value is None
    else:
        assert 0 <= found.p_value <= 1
        assert (found.p_value < 0.05) == (outcome == "fail")
        assert f"payments {found.canary_samples} vs {found.stable_samples}" in found.reason


def test_success_ratio_reports_values_and_sizes():
    found = compare.success_ratio(SuccessCounts(10, 100), SuccessCounts(99, 100), **DEFAULTS)
    assert (found.canary_value, found.stable_value) == (0.1, 0.99)
    assert (found.canary_samples, found.stable_samples) == (100, 100)
    assert found.reason.startswith("canary 0.1 vs stable 0.99 (payments 100 vs 100), p=")
    assert found.reason.endswith(": worse")


def test_a_wider_tolerance_passes_what_a_narrow_one_fails():
    canary, stable = SuccessCounts(950, 1000), SuccessCounts(1000, 1000)
    assert compare.success_ratio(canary, stable, **DEFAULTS).outcome == "fail"
    wide = {**DEFAULTS, "max_drop": 0.1}
    assert compare.success_ratio(canary, stable, **wide).outcome == "pass"


def test_a_stricter_significance_needs_more_evidence():
    canary, stable = SuccessCounts(52, 60), SuccessCounts(60, 60)  # p = 0.006
    assert compare.success_ratio(canary, stable, **DEFAULTS).outcome == "fail"
    strict = {**DEFAULTS, "significance": 0.001}
    assert compare.success_ratio(canary, stable, **strict).outcome == "pass"


LAT = {"max_increase": 0.2, "significance": 0.05, "min_samples": 5}
STABLE = (0.10, 0.11, 0.09, 0.10, 0.12, 0.10, 0.11, 0.09, 0.10, 0.11)
LATENCY_CASES = [
    ("equal", STABLE, STABLE, "pass"),
    ("clearly-worse", tuple(v * 3 for v in STABLE), STABLE, "fail"),
    ("marginally-worse-within-tolerance", tuple(v * 1.1 for v in STABLE), STABLE, "pass"),
    ("faster", tuple(v / 2 for v in STABLE), STABLE, "pass"),
    ("small-samples", (0.5, 0.6, 0.7, 0.8), STABLE, "no-data"),
    ("zero-traffic", (), (), "no-data"),
    # An interval without requests has no p99 (0/0 is NaN): it is not a sample.
    ("nan-intervals", (NAN,) * 10, STABLE, "no-data"),
    ("some-nan-intervals", (NAN, NAN, *(v * 3 for v in STABLE)), STABLE, "fail"),
    ("all-equal-values", (0.25,) * 6, (0.25,) * 6, "pass"),
]


@pytest.mark.parametrize(("canary", "stable", "outcome"),
                         [c[1:] for c in LATENCY_CASES], ids=[c[0] for c in LATENCY_CASES])
def test_p99_latency(canary, stable, outcome):
    found = compare.p99_latency(LatencySamples(canary), LatencySamples(stable), **LAT)
    assert found.outcome == outcome, found.reason
    assert found.test == compare.LATENCY_TEST
    assert (found.p_value is None) == (outcome == "no-data")


def test_mann_whitney_against_hand_worked_values():
    # x all above y, 3 and 3: U = 9, mean 4.5, var 3*3*7/12 = 5.25, z = (9-4.5-0.5)/sqrt(5.25)
    expected = 1 - 0.5 * (1 + math.erf((4 / math.sqrt(5.25)) / math.sqrt(2)))
    assert compare.mann_whitney_greater([4, 5, 6], [1, 2, 3]) == pytest.approx(expected)
    # Reversed: no evidence that x is greater.
    assert compare.mann_whitney_greater([1, 2, 3], [4, 5, 6]) > 0.95
    # Ties: [1, 2, 2] vs [2, 3, 3]; ranks 1, 3, 3 | 3, 5.5, 5.5 -> U = 7 - 6 = 1
    ties = (3**3 - 3) + (2**3 - 2)
    var = 9 / 12 * (7 - ties / 30)
    z = (1 - 4.5 - 0.5) / math.sqrt(var)
    expected = 1 - 0.5 * (1 + math.erf(z / math.sqrt(2)))
    assert compare.mann_whitney_greater([1, 2, 2], [2, 3, 3]) == pytest.approx(expected)
    assert compare.mann_whitney_greater([1, 1], [1, 1]) == 1.0


NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
BUILTIN = api.Analysis.model_validate(
    {"builtin": "paymentSuccess", "prometheusAddress": "http://prometheus:9090",
     "failureLimit": 0}
)
STEP = api.StepAnalysis(count=2)


def _round(success, latency, spec=BUILTIN):
    results = [
        analysis.MetricResult(analysis.SUCCESS_RATIO, None, canary=SuccessCounts(*success[0]),
                              stable=SuccessCounts(*success[1])),
        analysis.MetricResult(analysis.P99_LATENCY, None, canary=LatencySamples(latency[0]),
                              stable=LatencySamples(latency[1])),
    ]
    return analysis.record(analysis.start(NOW), spec, STEP, results, NOW)


def test_a_failing_canary_fails_the_run_and_the_message_names_ratios_and_sizes():
    run = _round(((5, 60), (60, 60)), (STABLE, STABLE))
    assert run.phase == "Failed"
    assert "success-ratio=canary 0.08333 vs stable 1 (payments 60 vs 60), p=" in run.message
    status = run.to_status()
    [ratio, latency] = status["metrics"]
    assert ratio["phase"] == "Failed" and latency["phase"] == "Successful"
    assert ratio["comparison"]["canaryValue"] == ratio["value"] == repr(5 / 60)
    assert ratio["comparison"]["canarySamples"] == 60
    assert ratio["comparison"]["stableSamples"] == 60
    assert ratio["comparison"]["stableValue"] == "1"
    assert ratio["comparison"]["test"] == compare.SUCCESS_TEST
    assert float(ratio["comparison"]["pValue"]) < 0.05
    # Round trip through the status keeps the comparison.
    again = analysis.Run.from_status(status)
    assert again is not None and again.metrics[0].comparison == run.metrics[0].comparison


def test_a_healthy_canary_passes():
    run = _round(((990, 1000), (991, 1000)), (STABLE, STABLE))
    assert run.phase == "Running" and run.successes == 1


@pytest.mark.parametrize(("on_no_data", "verdict"),
                         [("inconclusive", "Inconclusive"), ("fail", "Failed"),
                          ("pass", "Successful")])
def test_no_traffic_follows_on_no_data(on_no_data, verdict):
    spec = BUILTIN.model_copy(update={"on_no_data": on_no_data})
    run = _round(((0, 0), (0, 0)), ((), ()), spec)
    assert {m.phase for m in run.metrics} == {verdict}
    assert "fewer than 50 payments on a side (canary 0, stable 0)" in run.message or (
        verdict == "Successful")


def test_nan_counts_never_pass():
    spec = BUILTIN.model_copy(update={"on_no_data": "pass"})
    run = _round(((NAN, NAN), (100, 100)), (STABLE, STABLE), spec)
    assert run.metrics[0].phase == "Inconclusive"


def test_a_missing_builtin_result_is_an_error():
    run = analysis.record(analysis.start(NOW), BUILTIN, STEP, [], NOW)
    assert run.consecutive_errors == 1
    assert [m.name for m in run.metrics] == list(analysis.BUILTIN_METRICS)
