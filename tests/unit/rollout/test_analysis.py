"""The pure analysis judge: verdicts, onNoData, limits, due times, counts and the status form."""

from __future__ import annotations

import json
import math
import types
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from payment_operator.api import crdgen
from payment_operator.api import v1alpha1 as api
from payment_operator.rollout import analysis as a

pytestmark = pytest.mark.unit

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
NAN, INF = math.nan, math.inf


def metric(name: str = "m", low: float | None = None, high: float | None = None) -> api.Metric:
    if low is None and high is None:
        low = 0.99
    return api.Metric(
        name=name,
        prometheus=api.PrometheusQuery(address="http://prometheus:9090", query="up"),
        threshold_range=api.ThresholdRange(min=low, max=high),
    )


def analysis(*metrics: api.Metric, **settings: Any) -> api.Analysis:
    return api.Analysis(metrics=list(metrics) or [metric()], **settings)


def step(count: int = 3) -> api.StepAnalysis:
    return api.StepAnalysis(count=count)


def ok(name: str = "m") -> a.MetricResult:
    return a.MetricResult(name, 0.995)


def bad(name: str = "m") -> a.MetricResult:
    return a.MetricResult(name, 0.5)


def empty(name: str = "m") -> a.MetricResult:
    return a.MetricResult(name, None)


def error(name: str = "m") -> a.MetricResult:
    return a.MetricResult(name, None, "timed out after 10s")


ROUND = {"S": ok, "F": bad, "I": empty, "E": error}


def play(rounds: str, spec: api.Analysis | None = None, count: int = 100) -> list[a.Run]:
    """Record one single-metric round per letter (S, F, I, E), a minute apart."""
    spec = spec or analysis()
    run = a.start(T0)
    runs = []
    for i, letter in enumerate(rounds):
        run = a.record(run, spec, step(count), [ROUND[letter]()], T0 + timedelta(minutes=i + 1))
        runs.append(run)
    return runs


# -- judge -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "value", "expected"),
    [
        (0.99, None, 0.995, "Successful"),
        (0.99, None, 0.99, "Successful"),  # bounds are inclusive
        (0.99, None, 0.98, "Failed"),
        (None, 0.5, 0.5, "Successful"),
        (None, 0.5, 0.51, "Failed"),
        (None, 0.5, -3.0, "Successful"),
        (0.0, 0.01, 0.0, "Successful"),
        (0.0, 0.01, 0.01, "Successful"),
        (0.0, 0.01, -0.001, "Failed"),
        (0.0, 0.01, 0.02, "Failed"),
        (1.0, 1.0, 1.0, "Successful"),
    ],
)
def test_judge_compares_with_the_threshold_range(low, high, value, expected) -> None:
    result = a.MetricResult("m", value)
    for policy in ("inconclusive", "fail", "pass"):
        assert a.judge(metric(low=low, high=high), result, policy) == expected


@pytest.mark.parametrize(
    ("value", "policy", "expected"),
    [
        (None, "inconclusive", "Inconclusive"),
        (None, "fail", "Failed"),
        (None, "pass", "Successful"),
        (NAN, "inconclusive", "Inconclusive"),
        (NAN, "fail", "Failed"),
        (NAN, "pass", "Inconclusive"),  # NaN never passes
        (INF, "inconclusive", "Inconclusive"),
        (INF, "fail", "Failed"),
        (INF, "pass", "Inconclusive"),
        (-INF, "inconclusive", "Inconclusive"),
        (-INF, "fail", "Failed"),
        (-INF, "pass", "Inconclusive"),
    ],
)
def test_no_data_nan_and_infinities_follow_on_no_data(value, policy, expected) -> None:
    # Even where the comparison would decide (+Inf over a max, -Inf within it), the policy does.
    for m in (metric(low=0.99), metric(high=0.5), metric(low=-1.0, high=1.0)):
        assert a.judge(m, a.MetricResult("m", value), policy) == expected


@pytest.mark.parametrize("value", [0.995, 0.5, None, NAN])
def test_a_provider_error_is_an_error_whatever_the_value(value) -> None:
    for policy in ("inconclusive", "fail", "pass"):
        assert a.judge(metric(), a.MetricResult("m", value, "HTTP 500"), policy) == "Error"


# -- one round ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "verdict"),
    [
        ("S", "S", "Successful"),
        ("S", "F", "Failed"),
        ("F", "E", "Failed"),  # a failure is a failure even when another metric errored
        ("E", "I", "Error"),
        ("I", "E", "Error"),
        ("E", "S", "Error"),
        ("I", "S", "Inconclusive"),
        ("F", "I", "Failed"),
        ("I", "I", "Inconclusive"),
        ("E", "E", "Error"),
    ],
)
def test_every_metric_must_pass_for_the_round_to_pass(first, second, verdict) -> None:
    spec = analysis(metric("a"), metric("b"))
    run = a.record(a.start(T0), spec, step(), [ROUND[first]("a"), ROUND[second]("b")], T0)
    counters = {
        "Successful": run.successes,
        "Failed": run.failures,
        "Inconclusive": run.inconclusive,
        "Error": run.consecutive_errors,
    }
    assert counters == {k: int(k == verdict) for k in counters}
    assert run.measurements == int(verdict != "Error")
    assert [m.phase for m in run.metrics] == [
        a.judge(metric(), ROUND[x](), "inconclusive") for x in (first, second)
    ]


def test_the_round_records_each_metric_with_value_phase_message_and_time() -> None:
    spec = analysis(metric("success", low=0.99), metric("latency", high=0.5), metric("rate"))
    now = T0 + timedelta(seconds=30)
    results = [
        a.MetricResult("latency", NAN),
        a.MetricResult("success", 0.91),
        a.MetricResult("rate", None, "HTTP 503: unavailable"),
    ]
    run = a.record(a.start(T0), spec, step(), results, now)
    assert run.metrics == (
        a.Measurement("success", "Failed", now, "0.91", "0.91 below min 0.99"),
        a.Measurement("latency", "Inconclusive", now, "NaN", "NaN (onNoData inconclusive)"),
        a.Measurement("rate", "Error", now, None, "HTTP 503: unavailable"),
    )
    assert run.last_measured_at == now
    assert run.message == "success=0.91 below min 0.99 (failures 1, limit 2)"


def test_a_metric_without_a_result_is_an_error_and_unknown_results_are_ignored() -> None:
    spec = analysis(metric("a"), metric("b"))
    run = a.record(a.start(T0), spec, step(), [ok("a"), bad("zzz")], T0)
    assert [(m.name, m.phase, m.message) for m in run.metrics] == [
        ("a", "Successful", "0.995 meets min 0.99"),
        ("b", "Error", "not measured"),
    ]
    assert run.consecutive_errors == 1 and run.measurements == 0


def test_a_finished_run_is_left_alone() -> None:
    [done] = play("F", analysis(failure_limit=0))
    assert done.phase == "Failed"
    assert a.record(done, analysis(), step(), [ok()], T0 + timedelta(hours=1)) is done


# -- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 2, 5])
@pytest.mark.parametrize(
    ("letter", "setting", "phase"),
    [
        ("F", "failure_limit", "Failed"),
        ("I", "inconclusive_limit", "Inconclusive"),
        ("E", "consecutive_error_limit", "Error"),
    ],
)
def test_a_limit_is_tolerated_exactly_and_one_more_ends_the_run(
    letter, setting, phase, limit
) -> None:
    runs = play(letter * (limit + 1), analysis(**{setting: limit}))
    assert [r.phase for r in runs] == ["Running"] * limit + [phase]


def test_default_limits() -> None:
    spec = analysis()
    assert (spec.failure_limit, spec.inconclusive_limit, spec.consecutive_error_limit) == (2, 2, 4)
    assert [r.phase for r in play("EEEEE", spec)][-2:] == ["Running", "Error"]


@pytest.mark.parametrize("breaker", ["S", "F", "I"])
def test_a_round_that_measures_resets_the_consecutive_errors(breaker) -> None:
    spec = analysis(consecutive_error_limit=2)
    runs = play(f"EE{breaker}EE", spec)
    assert [r.consecutive_errors for r in runs] == [1, 2, 0, 1, 2]
    assert runs[-1].phase == "Running"
    assert play(f"EE{breaker}EEE", spec)[-1].phase == "Error"


def test_failures_and_inconclusive_are_not_reset_by_successes() -> None:
    runs = play("FSFSF", analysis(failure_limit=2))
    assert [r.failures for r in runs] == [1, 1, 2, 2, 3]
    assert runs[-1].phase == "Failed"
    runs = play("ISISI", analysis(inconclusive_limit=2))
    assert runs[-1].phase == "Inconclusive"


def test_messages_name_the_metric_value_threshold_and_limit() -> None:
    spec = analysis(metric("payment-success", low=0.99), failure_limit=2)
    run = a.start(T0)
    for i in range(3):
        result = [a.MetricResult("payment-success", 0.91)]
        run = a.record(run, spec, step(5), result, T0 + timedelta(minutes=i))
    assert run.message == "payment-success=0.91 below min 0.99 (failures 3 > limit 2)"
    assert play("E", analysis(consecutive_error_limit=0))[-1].message == (
        "m: timed out after 10s (consecutive errors 1 > limit 0)"
    )
    assert play("I", analysis(inconclusive_limit=0))[-1].message == (
        "m: no data (onNoData inconclusive) (inconclusive 1 > limit 0)"
    )
    assert play("S", count=3)[-1].message == "m=0.995 meets min 0.99 (measurement 1 of 3)"
    assert play("SFS", count=3)[-1].message == (
        "3 of 3 measurements taken: 2 successful, 1 failed, 0 inconclusive; "
        "last: m=0.995 meets min 0.99"
    )


def test_range_messages() -> None:
    spec = analysis(metric("a", low=0.0, high=0.01), metric("b", high=0.5))
    run = a.record(a.start(T0), spec, step(), [a.MetricResult("a", 0.005), ok("b")], T0)
    assert [m.message for m in run.metrics] == ["0.005 within [0, 0.01]", "0.995 above max 0.5"]
    run = a.record(a.start(T0), spec, step(), [a.MetricResult("a", 0.02), ok("b")], T0)
    assert run.message.startswith("a=0.02 above max 0.01; b=0.995 above max 0.5 (failures 1")
    pas = analysis(metric(high=0.5), on_no_data="pass")
    run = a.record(a.start(T0), pas, step(), [a.MetricResult("m", INF)], T0)
    assert run.metrics[0].message == "+Inf never passes (onNoData pass)"


def test_long_messages_are_clipped_to_the_status_limits() -> None:
    spec = analysis(*[metric(f"m{i}") for i in range(8)])
    results = [a.MetricResult(f"m{i}", None, "x" * 5000) for i in range(8)]
    run = a.record(a.start(T0), spec, step(), results, T0)
    assert all(len(m.message) == a.METRIC_MESSAGE_MAX for m in run.metrics)
    assert len(run.message) == a.RUN_MESSAGE_MAX and run.message.endswith("...")


# -- count -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rounds", "count", "phases"),
    [
        ("SSS", 3, ["Running", "Running", "Successful"]),
        ("S", 1, ["Successful"]),
        ("SFI", 3, ["Running", "Running", "Successful"]),  # within the limits
        ("SESES", 3, ["Running", "Running", "Running", "Running", "Successful"]),
        ("FFF", 3, ["Running", "Running", "Failed"]),  # over the limit on the last one
        ("III", 3, ["Running", "Running", "Inconclusive"]),
    ],
)
def test_the_run_succeeds_once_count_measurements_are_taken(rounds, count, phases) -> None:
    runs = play(rounds, count=count)
    assert [r.phase for r in runs] == phases
    assert runs[-1].measurements == rounds.count("S") + rounds.count("F") + rounds.count("I")


def test_one_failure_fails_a_single_measurement_step_with_no_tolerance() -> None:
    assert play("F", analysis(failure_limit=0), count=1)[-1].phase == "Failed"
    assert play("F", analysis(failure_limit=1), count=1)[-1].phase == "Successful"


# -- due times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("initial_delay", "first_due"),
    [
        (None, T0),
        ("0s", T0),
        ("1m", T0 + timedelta(minutes=1)),
        ("1h30m", T0 + timedelta(hours=1.5)),
    ],
)
def test_the_first_measurement_waits_for_the_initial_delay(initial_delay, first_due) -> None:
    spec = analysis(initial_delay=initial_delay, interval="30s")
    run = a.start(T0)
    assert a.next_measurement_at(run, spec) == first_due
    assert not a.is_due(run, spec, first_due - timedelta(milliseconds=1))
    assert a.is_due(run, spec, first_due)
    assert a.is_due(run, spec, first_due + timedelta(hours=5))


@pytest.mark.parametrize("letter", ["S", "F", "I", "E"])
def test_later_measurements_are_due_an_interval_after_the_last_round(letter) -> None:
    spec = analysis(initial_delay="10m", interval="45s")
    measured = T0 + timedelta(minutes=11)
    run = a.record(a.start(T0), spec, step(), [ROUND[letter]()], measured)
    assert a.next_measurement_at(run, spec) == measured + timedelta(seconds=45)
    assert not a.is_due(run, spec, measured + timedelta(seconds=44, microseconds=999999))
    assert a.is_due(run, spec, measured + timedelta(seconds=45))


def test_a_finished_run_is_never_due() -> None:
    [run] = play("F", analysis(failure_limit=0))
    assert not a.is_due(run, analysis(), T0 + timedelta(days=1))


def test_naive_times_are_taken_as_utc() -> None:
    naive = T0.replace(tzinfo=None)
    run = a.start(naive)
    assert run.started_at == T0 and run.started_at.tzinfo is UTC
    assert a.is_due(run, analysis(), naive)


# -- status ------------------------------------------------------------------------------


def _runs() -> Sequence[a.Run]:
    spec = analysis(metric("success"), metric("latency", high=0.5))
    run = a.start(T0.replace(microsecond=123456))
    out = [run]
    rounds = [
        [ok("success"), a.MetricResult("latency", NAN)],
        [error("success"), a.MetricResult("latency", -INF)],
        [bad("success"), a.MetricResult("latency", 1e16)],
        [ok("success"), a.MetricResult("latency", 0.1 + 0.2)],
    ]
    for i, results in enumerate(rounds):
        run = a.record(run, spec, step(4), results, T0 + timedelta(minutes=i, microseconds=i))
        out.append(run)
    return out


def _analysis_schema() -> dict[str, Any]:
    status = crdgen.root_schema()["properties"]["status"]
    schema: dict[str, Any] = status["properties"]["canary"]["properties"]["analysis"]
    return schema


@pytest.mark.parametrize("run", _runs(), ids=lambda r: f"{r.phase}-{r.measurements}")
def test_status_round_trips_and_fits_the_crd(run: a.Run) -> None:
    status = run.to_status()
    json.dumps(status, allow_nan=False)
    assert a.Run.from_status(status) == run
    assert a.Run.from_status(types.MappingProxyType(status)) == run
    assert api.AnalysisStatus.model_validate(status).started_at == run.started_at
    # A null deletes the field in a merge patch; the API server drops it in a full write.
    present = {k: v for k, v in status.items() if v is not None}
    jsonschema.Draft4Validator(_analysis_schema()).validate(present)


def test_status_shape() -> None:
    run = _runs()[1]
    status = run.to_status()
    assert status == {
        "phase": "Running",
        "measurements": 1,
        "successes": 0,
        "failures": 0,
        "inconclusive": 1,
        "consecutiveErrors": 0,
        "startedAt": "2025-01-02T03:04:05.123456Z",
        "lastMeasuredAt": "2025-01-02T03:04:05Z",
        "message": "latency=NaN (onNoData inconclusive) (inconclusive 1, limit 2)",
        "metrics": [
            {
                "name": "success",
                "phase": "Successful",
                "value": "0.995",
                "message": "0.995 meets min 0.99",
                "measuredAt": "2025-01-02T03:04:05Z",
            },
            {
                "name": "latency",
                "phase": "Inconclusive",
                "value": "NaN",
                "message": "NaN (onNoData inconclusive)",
                "measuredAt": "2025-01-02T03:04:05Z",
            },
        ],
    }
    fresh = a.start(T0).to_status()
    assert fresh["lastMeasuredAt"] is None and fresh["metrics"] == [] and fresh["message"] == ""


@pytest.mark.parametrize("data", [None, {}, {"phase": "Running", "successes": 2}])
def test_no_run_without_a_start_time(data) -> None:
    assert a.Run.from_status(data) is None


def test_from_status_fills_in_what_an_older_status_left_out() -> None:
    run = a.Run.from_status({"startedAt": "2025-01-02T03:04:05Z", "failures": 1, "extra": 1})
    assert run == a.Run(started_at=T0, failures=1)


def test_from_status_refuses_a_status_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="phase"):
        a.Run.from_status({"startedAt": "2025-01-02T03:04:05Z", "phase": "Exploded"})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.99, "0.99"),
        (1.0, "1"),
        (-0.0, "-0"),
        (1e16, "1e+16"),
        (0.1 + 0.2, "0.30000000000000004"),
        (NAN, "NaN"),
        (INF, "+Inf"),
        (-INF, "-Inf"),
        (12345678.0, "12345678"),
    ],
)
def test_format_value_reads_back_as_the_same_float(value: float, text: str) -> None:
    assert a.format_value(value) == text
    assert float(text) == value or (math.isnan(value) and math.isnan(float(text)))
