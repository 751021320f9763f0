"""The providers without a network: templates, numbers, Prometheus shapes, never raising."""

from __future__ import annotations

import math

import pytest
from payment_operator import providers
from payment_operator.api import v1alpha1 as api
from payment_operator.providers import ProviderError, prometheus, render
from payment_operator.providers.errors import clip, to_number
from payment_operator.providers.prometheus import value_of
from payment_operator.rollout.analysis import MetricResult

pytestmark = pytest.mark.unit

VARIABLES = {"revision": "7e6a", "stable_revision": "6d5f", "namespace": "payments", "name": "c"}


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ('up{revision="{{revision}}"}', 'up{revision="7e6a"}'),
        ("{{ namespace }}/{{name}}:{{stable_revision}}", "payments/c:6d5f"),
        ("sum(x{a='{'})\n", "sum(x{a='{'})\n"),
    ],
)
def test_render_replaces_the_placeholders(template: str, text: str) -> None:
    assert render(template, VARIABLES) == text


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{revision}}", "template: 'revision' is undefined"),
        ("{{ ''.__class__.__mro__ }}", "template: "),  # the sandbox refuses Python internals
        ("{{ revision", "template: "),
    ],
)
def test_render_fails_loudly(template: str, error: str) -> None:
    with pytest.raises(ProviderError, match=f"^{error}"):
        render(template, {})


@pytest.mark.parametrize(
    ("value", "number"),
    [(1, 1.0), (0.5, 0.5), ("0.99", 0.99), (" 2e3 ", 2000.0), ("+Inf", math.inf),
     ("-inf", -math.inf), (10**400, math.inf)],
)
def test_to_number(value: object, number: float) -> None:
    assert to_number(value, "x") == number


@pytest.mark.parametrize("value", [True, None, "high", "1_000", [1], {"a": 1}, "0x10"])
def test_to_number_refuses_what_is_not_a_number(value: object) -> None:
    with pytest.raises(ProviderError, match=r"^x is not a number"):
        to_number(value, "x")


def test_nan_strings_read_as_nan() -> None:
    assert math.isnan(to_number("NaN", "x"))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "unexpected response: not a JSON object"),
        ({"status": "error"}, "query failed: no error given"),
        ({"status": "error", "errorType": "timeout", "error": "query timed out"},
         "query failed: timeout: query timed out"),
        ({"status": "success"}, "unexpected response: no data"),
        ({"status": "success", "data": {"resultType": "string", "result": [1, "a"]}},
         "query returned a string, expected a vector or a scalar"),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1]}},
         "unexpected response: a sample is not [time, value]"),
    ],
)
def test_value_of_refuses_other_shapes(body: object, error: str) -> None:
    with pytest.raises(ProviderError) as raised:
        value_of(body)
    assert str(raised.value) == error


def test_clip_keeps_messages_on_one_short_line() -> None:
    assert clip("a\n  b\tc") == "a b c"
    assert len(clip("x" * 1000)) == 300 and clip("x" * 1000).endswith("...")


def test_measure_turns_a_provider_bug_into_an_error_result(monkeypatch) -> None:
    def broken(spec: object, variables: object) -> float:
        raise RuntimeError("boom")

    monkeypatch.setattr(prometheus, "query", broken)
    metric = api.Metric.model_validate(
        {
            "name": "m",
            "prometheus": {"address": "http://p:9090", "query": "up"},
            "thresholdRange": {"min": 1},
        }
    )
    assert providers.measure(metric, VARIABLES) == MetricResult("m", None, "RuntimeError: boom")
