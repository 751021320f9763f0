"""The built-in analysis's queries and how their answers become canary and stable counts."""

from __future__ import annotations

import math
import re

import pytest
from payment_operator.api import v1alpha1 as api
from payment_operator.providers import builtin
from payment_operator.providers.errors import ProviderError
from payment_operator.rollout.compare import SuccessCounts

pytestmark = pytest.mark.unit

VARIABLES = {"revision": "c1", "stable_revision": "s1", "namespace": "pay", "name": "x"}


def test_queries_read_both_revisions_over_the_window_with_real_metric_names():
    spec = api.Analysis.model_validate({
        "builtin": "paymentSuccess", "prometheusAddress": "http://p:9090",
        "paymentSuccess": {"window": "5m", "latencyInterval": "30s"},
    })
    payments, latency = builtin.queries(spec, VARIABLES)
    assert payments == (
        'sum by (revision, outcome) (increase(payment_requests_total{namespace="pay",'
        'revision=~"c1|s1",operation="create",outcome=~"success|declined|error"}[300s]))'
    )
    assert latency == (
        "histogram_quantile(0.99, sum by (revision, le) (rate(http_request_duration_seconds_"
        'bucket{namespace="pay",revision=~"c1|s1",route="/api/v1/payments",method="POST"}'
        "[30s])))"
    )


def _series(revision, outcome, value):
    return {"metric": {"revision": revision, "outcome": outcome}, "value": [1.0, value]}


def test_payments_sum_the_outcomes_per_revision():
    data = {"resultType": "vector", "result": [
        _series("c1", "success", "3"), _series("c1", "error", "57.2"),
        _series("s1", "success", "60"), _series("s1", "declined", "2"),
    ]}
    counts = builtin._payments(data)
    assert counts["s1"] == SuccessCounts(60.0, 62.0)
    assert counts["c1"].successes == 3.0 and counts["c1"].total == pytest.approx(60.2)


def test_latency_keeps_nan_intervals_for_the_judge_to_drop():
    data = {"resultType": "matrix", "result": [
        {"metric": {"revision": "c1"}, "values": [[1, "0.1"], [2, "NaN"]]},
    ]}
    [first, second] = builtin._latency(data)["c1"]
    assert first == 0.1 and math.isnan(second)


@pytest.mark.parametrize("data", [
    {"resultType": "scalar", "result": [1, "1"]},
    {"resultType": "vector", "result": [{"value": [1, "1"]}]},
])
def test_unexpected_payment_answers_are_provider_errors(data):
    with pytest.raises(ProviderError):
        builtin._payments(data)


def test_unexpected_latency_answers_are_provider_errors():
    with pytest.raises(ProviderError):
        builtin._latency({"resultType": "vector", "result": []})
    with pytest.raises(ProviderError):
        builtin._latency({"resultType": "matrix", "result": [{"metric": {}, "values": [[1]]}]})


def test_refusals_and_rejections_do_not_lower_the_success_ratio():
    # The query asks only for the counted outcomes: no outcome the runtime exports for a
    # client's or a risk rule's refusal matches it.
    from payment_runtime.metrics import PAYMENT_OUTCOMES

    payments, _ = builtin.queries(
        api.Analysis.model_validate({"builtin": "paymentSuccess", "prometheusAddress": "http://p"}),
        VARIABLES,
    )
    [regex] = re.findall(r'outcome=~"([^"]+)"', payments)
    matched = {o for o in PAYMENT_OUTCOMES if re.fullmatch(regex, o)}
    assert matched == {"success", "declined", "error"}
    assert {"refused", "rejected"} <= set(PAYMENT_OUTCOMES) - matched
    # And should a refused series come back anyway, it is not counted.
    plain = {"resultType": "vector", "result": [
        _series("c1", "success", "90"), _series("c1", "declined", "10"),
    ]}
    noisy = {"resultType": "vector", "result": [
        *plain["result"], _series("c1", "refused", "400"), _series("c1", "rejected", "25"),
    ]}
    assert builtin._payments(noisy) == builtin._payments(plain) == {
        "c1": SuccessCounts(90.0, 100.0)
    }
