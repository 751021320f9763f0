"""Judging the canary's metrics during one analysis step: pure decisions, time passed in.

The rollout engine starts a :class:`Run` when an analysis step begins (:func:`start`), asks
:func:`is_due` on each pass, lets the reconciler measure every metric (the providers return
one :class:`MetricResult` per metric) and folds the results in with :func:`record`.  A run
round-trips through ``status.canary.analysis`` (:meth:`Run.to_status`,
:meth:`Run.from_status`), so a restarted operator carries on where it stopped.

One *measurement round* measures every metric once.  Its verdict is Failed when a metric is
out of its threshold range (or has no data under ``onNoData: fail``), else Error when a
provider failed, else Inconclusive when a metric had no data, else Successful.  An Error
round is not a measurement: it only counts towards ``consecutiveErrorLimit``, and any other
round resets that count.  The run ends Failed, Inconclusive or Error when the matching
counter goes over its limit, and Successful once ``count`` measurements are taken within the
limits.

The built-in ``paymentSuccess`` analysis has two metrics, :data:`BUILTIN_METRICS`; their
results carry the canary's and the stable revision's counts, judged by
:mod:`payment_operator.rollout.compare` (too few payments is no data).

No usable value: an empty result follows ``onNoData`` (inconclusive, fail or pass); NaN,
+Inf and -Inf follow it too, except that they never pass: under ``onNoData: pass`` they are
Inconclusive, so a broken query (0/0) cannot promote a canary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from payment_operator.api import v1alpha1 as api
from payment_operator.api.v1alpha1.resource import plain
from payment_operator.rollout import compare

Verdict = api.MeasurementPhase

#: Longest message of one metric, and of the run (the status schema's limits).
METRIC_MESSAGE_MAX: Final = 1024
RUN_MESSAGE_MAX: Final = 4096

#: The metrics of ``builtin: paymentSuccess``, in the order they are measured and shown.
SUCCESS_RATIO: Final = "success-ratio"
P99_LATENCY: Final = "p99-latency"
BUILTIN_METRICS: Final = (SUCCESS_RATIO, P99_LATENCY)

_NO_DATA: Final[Mapping[api.OnNoData, Verdict]] = {
    "inconclusive": "Inconclusive",
    "fail": "Failed",
    "pass": "Successful",
}


@dataclass(frozen=True)
class MetricResult:
    """What a provider measured for one metric."""

    name: str
    #: None: no data (an empty result).
    value: float | None
    #: The provider failed (timeout, HTTP error, bad JSON, not a number); ``value`` is ignored.
    error: str | None = None
    #: Built-in analysis: what was counted for the canary and the stable revision.
    canary: compare.SuccessCounts | compare.LatencySamples | None = None
    stable: compare.SuccessCounts | compare.LatencySamples | None = None


@dataclass(frozen=True)
class Comparison:
    """Canary against stable, as the status shows it (values as text)."""

    canary_value: str | None
    stable_value: str | None
    canary_samples: int
    stable_samples: int
    test: str
    p_value: str | None


@dataclass(frozen=True)
class Measurement:
    """The last measurement of one metric, as shown in the status."""

    name: str
    phase: Verdict
    measured_at: datetime
    #: The value as text (``NaN``, ``+Inf`` and ``-Inf`` included); None without one.
    value: str | None = None
    message: str = ""
    comparison: Comparison | None = None


@dataclass(frozen=True, kw_only=True)
class Run:
    """The analysis of one step: counters, outcome and the last value of each metric."""

    phase: api.AnalysisPhase = "Running"
    started_at: datetime
    #: Rounds that measured (Error rounds excluded).
    measurements: int = 0
    successes: int = 0
    failures: int = 0
    inconclusive: int = 0
    #: Error rounds in a row, since the last round that measured.
    consecutive_errors: int = 0
    #: Time of the last round, Error rounds included (the next is due an interval later).
    last_measured_at: datetime | None = None
    message: str = ""
    metrics: tuple[Measurement, ...] = ()

    @property
    def done(self) -> bool:
        """True once the outcome is known (any phase but Running)."""
        return self.phase != "Running"

    def to_status(self) -> dict[str, Any]:
        """The ``status.canary.analysis`` object (camelCase, JSON-able, an AnalysisStatus).

        Every key is written, ``lastMeasuredAt`` as null before the first round, so a merge
        patch replaces what an earlier run left behind.
        """
        return {
            "phase": self.phase,
            "measurements": self.measurements,
            "successes": self.successes,
            "failures": self.failures,
            "inconclusive": self.inconclusive,
            "consecutiveErrors": self.consecutive_errors,
            "startedAt": format_time(self.started_at),
            "lastMeasuredAt": (
                None if self.last_measured_at is None else format_time(self.last_measured_at)
            ),
            "message": self.message,
            "metrics": [_measurement_status(m) for m in self.metrics],
        }

    @classmethod
    def from_status(cls, data: Mapping[str, Any] | None) -> Run | None:
        """The run stored by :meth:`to_status`; None when there is none (no ``startedAt``).

        ``data`` may be a plain dict or a mapping view (such as Kopf's).  Raises
        ``ValueError`` when it does not fit the AnalysisStatus schema.
        """
        if not data:
            return None
        status = api.AnalysisStatus.model_validate(plain(data))
        if status.started_at is None:
            return None
        return cls(
            phase=status.phase or "Running",
            started_at=_utc(status.started_at),
            measurements=status.measurements,
            successes=status.successes,
            failures=status.failures,
            inconclusive=status.inconclusive,
            consecutive_errors=status.consecutive_errors,
            last_measured_at=(
                None if status.last_measured_at is None else _utc(status.last_measured_at)
            ),
            message=status.message or "",
            metrics=tuple(
                Measurement(
                    name=m.name,
                    phase=m.phase,
                    measured_at=_utc(m.measured_at),
                    value=m.value,
                    message=m.message or "",
                    comparison=None if m.comparison is None else Comparison(
                        canary_value=m.comparison.canary_value,
                        stable_value=m.comparison.stable_value,
                        canary_samples=m.comparison.canary_samples,
                        stable_samples=m.comparison.stable_samples,
                        test=m.comparison.test,
                        p_value=m.comparison.p_value,
                    ),
                )
                for m in status.metrics or ()
            ),
        )


def start(now: datetime) -> Run:
    """A new run for an analysis step that begins ``now``."""
    return Run(started_at=_utc(now))


def next_measurement_at(run: Run, analysis: api.Analysis) -> datetime:
    """When the next round is due: ``initialDelay`` after the start for the first round,
    then ``interval`` after the last one (an Error round included)."""
    if run.last_measured_at is None:
        delay = api.parse_duration(analysis.initial_delay) if analysis.initial_delay else None
        return run.started_at + (delay or timedelta(0))
    return run.last_measured_at + api.parse_duration(analysis.interval)


def is_due(run: Run, analysis: api.Analysis, now: datetime) -> bool:
    """True when the run is still Running and its next round is due at ``now`` or earlier."""
    return not run.done and _utc(now) >= next_measurement_at(run, analysis)


def metric_names(analysis: api.Analysis) -> tuple[str, ...]:
    """The names of the metrics a round measures: the custom ones or the built-in ones."""
    if analysis.builtin is not None:
        return BUILTIN_METRICS
    return tuple(m.name for m in analysis.metrics or ())


def judge(metric: api.Metric, result: MetricResult, on_no_data: api.OnNoData) -> Verdict:
    """The verdict on one metric's result.

    A provider error is Error.  An empty result follows ``on_no_data``; so do NaN, +Inf and
    -Inf, except that under ``pass`` they are Inconclusive (NaN never passes).  Otherwise
    the value passes when it lies within the threshold range, bounds included.
    """
    return _assess(metric, result, on_no_data)[0]


def record(
    run: Run,
    analysis: api.Analysis,
    step: api.StepAnalysis,
    results: Sequence[MetricResult],
    now: datetime,
) -> Run:
    """The run after one measurement round taken at ``now``.

    ``results`` holds one result per metric of ``analysis`` (matched by name; a metric
    without one counts as an error, results for unknown names are ignored).  A run that is
    done is returned unchanged.  Whether the round was due is the caller's business.
    """
    if run.done:
        return run
    now = _utc(now)
    by_name = {r.name: r for r in results}
    assessed: list[tuple[str, float | None, Verdict, str]] = []
    comparisons: dict[str, Comparison] = {}
    metrics = {m.name: m for m in analysis.metrics or ()}
    for name in metric_names(analysis):
        result = by_name.get(name) or MetricResult(name, None, "not measured")
        if name in metrics:
            verdict, detail = _assess(metrics[name], result, analysis.on_no_data)
            value = None if result.error is not None else result.value
        else:
            verdict, detail, value, comparison = _assess_builtin(name, result, analysis)
            if comparison is not None:
                comparisons[name] = comparison
        assessed.append((name, value, verdict, detail))
    verdict = _round_verdict([v for _, _, v, _ in assessed])

    if verdict == "Error":
        counted = replace(run, consecutive_errors=run.consecutive_errors + 1)
    else:
        counted = replace(
            run,
            measurements=run.measurements + 1,
            successes=run.successes + (verdict == "Successful"),
            failures=run.failures + (verdict == "Failed"),
            inconclusive=run.inconclusive + (verdict == "Inconclusive"),
            consecutive_errors=0,
        )
    phase = _phase(counted, analysis, step)
    detail = "; ".join(
        f"{name}={d}" if value is not None else f"{name}: {d}"
        for name, value, v, d in assessed
        if v == verdict
    )
    message = _message(counted, phase, verdict, detail, analysis, step)
    return replace(
        counted,
        phase=phase,
        last_measured_at=now,
        message=_clip(message, RUN_MESSAGE_MAX),
        metrics=tuple(
            Measurement(
                name=name,
                phase=v,
                measured_at=now,
                value=None if value is None else format_value(value),
                message=_clip(d, METRIC_MESSAGE_MAX),
                comparison=comparisons.get(name),
            )
            for name, value, v, d in assessed
        ),
    )


def format_value(value: float) -> str:
    """A value as Prometheus writes it: ``NaN``, ``+Inf``, ``-Inf``, else the shortest text
    that reads back as the same float (``0.99``, ``1``, ``1e+16``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    return text.removesuffix(".0")


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, with microseconds only when there are some."""
    return _utc(when).isoformat().replace("+00:00", "Z")


def _assess(
    metric: api.Metric, result: MetricResult, on_no_data: api.OnNoData
) -> tuple[Verdict, str]:
    """The verdict on one result and a short reason (the value first, when there is one)."""
    if result.error is not None:
        return "Error", result.error or "provider error"
    value = result.value
    if value is None:
        return _NO_DATA[on_no_data], f"no data (onNoData {on_no_data})"
    text = format_value(value)
    if not math.isfinite(value):
        if on_no_data == "pass":
            return "Inconclusive", f"{text} never passes (onNoData pass)"
        return _NO_DATA[on_no_data], f"{text} (onNoData {on_no_data})"
    low, high = metric.threshold_range.min, metric.threshold_range.max
    if low is not None and value < low:
        return "Failed", f"{text} below min {format_value(low)}"
    if high is not None and value > high:
        return "Failed", f"{text} above max {format_value(high)}"
    if high is None:
        return "Successful", f"{text} meets min {_bound(low)}"
    if low is None:
        return "Successful", f"{text} meets max {_bound(high)}"
    return "Successful", f"{text} within [{_bound(low)}, {_bound(high)}]"


def _assess_builtin(
    name: str, result: MetricResult, analysis: api.Analysis
) -> tuple[Verdict, str, float | None, Comparison | None]:
    """Verdict, reason, canary value and comparison of one built-in metric's result."""
    if result.error is not None:
        return "Error", result.error or "provider error", None, None
    tuning = analysis.payment_success or api.PaymentSuccess()
    canary, stable = result.canary, result.stable
    found: compare.Judgement
    if isinstance(canary, compare.SuccessCounts) and isinstance(stable, compare.SuccessCounts):
        found = compare.success_ratio(
            canary, stable, max_drop=tuning.max_success_ratio_drop,
            significance=tuning.significance, min_payments=tuning.min_payments,
        )
    elif isinstance(canary, compare.LatencySamples) and isinstance(
        stable, compare.LatencySamples
    ):
        found = compare.p99_latency(
            canary, stable, max_increase=tuning.max_latency_increase,
            significance=tuning.significance, min_samples=tuning.min_latency_samples,
        )
    else:
        return "Error", f"{name}: the provider returned no canary and stable data", None, None
    comparison = Comparison(
        canary_value=None if found.canary_value is None else format_value(found.canary_value),
        stable_value=None if found.stable_value is None else format_value(found.stable_value),
        canary_samples=found.canary_samples,
        stable_samples=found.stable_samples,
        test=found.test,
        p_value=None if found.p_value is None else f"{found.p_value:.4g}",
    )
    if found.outcome == "pass":
        return "Successful", found.reason, found.canary_value, comparison
    if found.outcome == "fail":
        return "Failed", found.reason, found.canary_value, comparison
    on_no_data = analysis.on_no_data
    values = (found.canary_value, found.stable_value)
    if on_no_data == "pass" and any(v is not None and math.isnan(v) for v in values):
        return "Inconclusive", f"{found.reason}: never passes (onNoData pass)", None, comparison
    return _NO_DATA[on_no_data], f"{found.reason} (onNoData {on_no_data})", None, comparison


def _bound(value: float | None) -> str:
    return "none" if value is None else format_value(value)


def _round_verdict(verdicts: Sequence[Verdict]) -> Verdict:
    for verdict in ("Failed", "Error", "Inconclusive"):
        if verdict in verdicts:
            return verdict
    return "Successful"


def _phase(run: Run, analysis: api.Analysis, step: api.StepAnalysis) -> api.AnalysisPhase:
    if run.failures > analysis.failure_limit:
        return "Failed"
    if run.consecutive_errors > analysis.consecutive_error_limit:
        return "Error"
    if run.inconclusive > analysis.inconclusive_limit:
        return "Inconclusive"
    if run.measurements >= step.count:
        return "Successful"
    return "Running"


def _message(
    run: Run,
    phase: api.AnalysisPhase,
    verdict: Verdict,
    detail: str,
    analysis: api.Analysis,
    step: api.StepAnalysis,
) -> str:
    counters: dict[Verdict, tuple[str, int, int]] = {
        "Failed": ("failures", run.failures, analysis.failure_limit),
        "Inconclusive": ("inconclusive", run.inconclusive, analysis.inconclusive_limit),
        "Error": ("consecutive errors", run.consecutive_errors, analysis.consecutive_error_limit),
    }
    if phase in counters:
        what, count, limit = counters[phase]
        return f"{detail} ({what} {count} > limit {limit})"
    if phase == "Successful":
        return (
            f"{run.measurements} of {step.count} measurements taken: {run.successes} "
            f"successful, {run.failures} failed, {run.inconclusive} inconclusive; "
            f"last: {detail}"
        )
    if verdict in counters:
        what, count, limit = counters[verdict]
        return f"{detail} ({what} {count}, limit {limit})"
    return f"{detail} (measurement {run.measurements} of {step.count})"


def _measurement_status(m: Measurement) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name, "phase": m.phase}
    if m.value is not None:
        out["value"] = m.value
    out["message"] = m.message
    out["measuredAt"] = format_time(m.measured_at)
    if m.comparison is not None:
        c = m.comparison
        comparison = {
            "canaryValue": c.canary_value,
            "stableValue": c.stable_value,
            "canarySamples": c.canary_samples,
            "stableSamples": c.stable_samples,
            "test": c.test,
            "pValue": c.p_value,
        }
        out["comparison"] = {k: v for k, v in comparison.items() if v is not None}
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _utc(when: datetime) -> datetime:
    """``when`` in UTC; a naive time is taken to be UTC already."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
