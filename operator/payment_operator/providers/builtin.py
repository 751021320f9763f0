"""The built-in ``paymentSuccess`` analysis: two Prometheus queries, canary and stable at once.

Both revisions are read by the same query, so they are measured over the same window at the
same evaluation time.  Series are told apart by the ``revision`` label the runtime adds to
everything it exports (``PAYMENT_REVISION``), and confined to the PaymentService's namespace
by the ``namespace`` target label (a ServiceMonitor's; the test bed's file targets set it).

- Payments: ``sum by (revision, outcome) (increase(payment_requests_total{operation="create",
  outcome=~"success|declined|error"}[window]))`` (an instant query). Only the outcomes that
  are the service's doing count: ``rejected`` (a client error, a rate limit) and ``refused``
  (a velocity limit) are left out of the query and, should a series of them come back
  anyway, of the counts.
- Latency: ``histogram_quantile(0.99, sum by (revision, le) (rate(
  http_request_duration_seconds_bucket{route="/api/v1/payments",method="POST"}[interval])))``
  as a range query over the window with ``step = interval``: one p99 per interval.

The judging is :mod:`payment_operator.rollout.compare`'s; this module only counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Final

from payment_operator.api import v1alpha1 as api
from payment_operator.providers import http, prometheus
from payment_operator.providers.errors import ProviderError, to_number
from payment_operator.rollout import compare
from payment_operator.rollout.analysis import P99_LATENCY, SUCCESS_RATIO, MetricResult

TIMEOUT_SECONDS: Final = 10
#: The outcomes of ``payment_requests_total`` the success ratio is made of.
COUNTED_OUTCOMES: Final = ("success", "declined", "error")
PAYMENTS_QUERY: Final = (
    "sum by (revision, outcome) (increase(payment_requests_total{{namespace=\"{namespace}\","
    "revision=~\"{revisions}\",operation=\"create\",outcome=~\""
    + "|".join(COUNTED_OUTCOMES)
    + "\"}}[{window}s]))"
)
LATENCY_QUERY: Final = (
    "histogram_quantile(0.99, sum by (revision, le) (rate(http_request_duration_seconds_bucket"
    "{{namespace=\"{namespace}\",revision=~\"{revisions}\",route=\"/api/v1/payments\","
    "method=\"POST\"}}[{interval}s])))"
)


def queries(analysis: api.Analysis, variables: Mapping[str, str]) -> tuple[str, str]:
    """The payments and latency PromQL for this analysis (seconds, not durations, inside)."""
    tuning = analysis.payment_success or api.PaymentSuccess()
    values = {
        "namespace": variables["namespace"],
        "revisions": f"{variables['revision']}|{variables['stable_revision']}",
        "window": _seconds(tuning.window),
        "interval": _seconds(tuning.latency_interval),
    }
    return PAYMENTS_QUERY.format(**values), LATENCY_QUERY.format(**values)


def measure(
    analysis: api.Analysis, variables: Mapping[str, str], now: float | None = None
) -> list[MetricResult]:
    """One result per built-in metric; a failure is a result with ``error``, never a raise."""
    canary, stable = variables["revision"], variables["stable_revision"]
    payments, latency = queries(analysis, variables)
    tuning = analysis.payment_success or api.PaymentSuccess()
    address = (analysis.prometheus_address or "").rstrip("/")
    results = []
    try:
        counts = _payments(_get(f"{address}/api/v1/query", {"query": payments}))
        results.append(MetricResult(
            SUCCESS_RATIO, None,
            canary=counts.get(canary, compare.SuccessCounts(0, 0)),
            stable=counts.get(stable, compare.SuccessCounts(0, 0)),
        ))
    except ProviderError as error:
        results.append(MetricResult(SUCCESS_RATIO, None, str(error)))
    try:
        end = time.time() if now is None else now
        step = _seconds(tuning.latency_interval)
        start = end - _seconds(tuning.window) + step
        series = _latency(_get(f"{address}/api/v1/query_range", {
            "query": latency, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}s",
        }))
        results.append(MetricResult(
            P99_LATENCY, None,
            canary=compare.LatencySamples(series.get(canary, ())),
            stable=compare.LatencySamples(series.get(stable, ())),
        ))
    except ProviderError as error:
        results.append(MetricResult(P99_LATENCY, None, str(error)))
    return results


def _get(url: str, params: dict[str, str]) -> dict[str, Any]:
    response = http.get(url, params=params, timeout=TIMEOUT_SECONDS)
    if not response.ok:
        raise ProviderError(f"HTTP {response.status}: {response.text() or 'no body'}")
    body = response.json()
    if not isinstance(body, dict) or body.get("status") != "success":
        detail = body.get("error") if isinstance(body, dict) else None
        raise ProviderError(f"query failed: {detail or 'not a success response'}")
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise ProviderError("unexpected response: no data.result")
    return data


def _payments(data: dict[str, Any]) -> dict[str, compare.SuccessCounts]:
    """Revision -> (successes, total) from ``sum by (revision, outcome)``."""
    if data.get("resultType") != "vector":
        raise ProviderError(f"payments query returned a {data.get('resultType')}")
    success: dict[str, float] = {}
    total: dict[str, float] = {}
    for item in data["result"]:
        labels, value = _labels(item), prometheus.value_of(
            {"status": "success", "data": {"resultType": "vector", "result": [item]}}
        )
        rev, outcome = labels.get("revision", ""), labels.get("outcome", "")
        if outcome not in COUNTED_OUTCOMES:
            continue
        number = math.nan if value is None else value
        total[rev] = total.get(rev, 0.0) + number
        if outcome == "success":
            success[rev] = success.get(rev, 0.0) + number
    return {rev: compare.SuccessCounts(success.get(rev, 0.0), n) for rev, n in total.items()}


def _latency(data: dict[str, Any]) -> dict[str, tuple[float, ...]]:
    """Revision -> its p99 values, one per step, from the matrix of the range query."""
    if data.get("resultType") != "matrix":
        raise ProviderError(f"latency query returned a {data.get('resultType')}")
    out: dict[str, tuple[float, ...]] = {}
    for item in data["result"]:
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list):
            raise ProviderError("unexpected response: a series without values")
        points = []
        for sample in values:
            if not isinstance(sample, list) or len(sample) != 2:
                raise ProviderError("unexpected response: a sample is not [time, value]")
            points.append(to_number(sample[1], "a latency value"))
        out[_labels(item).get("revision", "")] = tuple(points)
    return out


def _labels(item: Any) -> dict[str, str]:
    metric = item.get("metric") if isinstance(item, dict) else None
    if not isinstance(metric, dict):
        raise ProviderError("unexpected response: a series without labels")
    return {str(k): str(v) for k, v in metric.items()}


def _seconds(duration: str) -> int:
    return max(1, int(api.parse_duration(duration).total_seconds()))
