"""How a new revision reaches production: canary steps, metric analysis, deadlines.

The shape follows Argo Rollouts' canary strategy (``setWeight`` / ``pause`` / ``analysis``
steps) with the analysis template inlined, because one PaymentService owns one rollout.  A
metric is measured by a Prometheus instant query or by an HTTP GET returning JSON (``web``);
queries and URLs may name the ``{{revision}}``-style placeholders of
:data:`TEMPLATE_VARIABLES`, and admission refuses any other template syntax.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from payment_operator.api.v1alpha1.base import (
    ApiModel,
    DnsLabel,
    Duration,
    Rule,
    Url,
    present,
    unique,
)

OnNoData = Literal["inconclusive", "fail", "pass"]

#: The variables a query or URL may name as ``{{variable}}``, in the order of the docs.
TEMPLATE_VARIABLES = ("revision", "stable_revision", "namespace", "name")
#: Text with no template syntax but ``{{variable}}`` placeholders (spaces allowed inside the
#: braces).  ``{%`` and ``{#`` (Jinja statements and comments) and a ``{{`` that does not
#: start a known placeholder are refused; a single ``{`` (a PromQL label matcher) is fine.
TEMPLATE_PATTERN = (
    r"([^{]|\{[^{%#]|\{\{\s*(" + "|".join(TEMPLATE_VARIABLES) + r")\s*\}\})*\{?"
)
_TEMPLATE = re.compile(TEMPLATE_PATTERN)
_TEMPLATE_HELP = (
    "{{revision}} (the canary revision), {{stable_revision}}, {{namespace}} and {{name}} "
    "(of the PaymentService) are replaced by their values"
)
_TIMEOUT_HELP = (
    "Seconds each wait for the server (connecting, sending, every read) may last; a "
    "response still arriving after this many seconds in all is abandoned. Either is an error."
)
#: An HTTP header name (an RFC 9110 token).
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
#: An HTTP header value: printable ASCII, spaces and tabs.
HEADER_VALUE_PATTERN = r"^[\t -~]*$"
#: Headers that carry credentials: refused, since the spec is not a place for secrets.
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")


def is_template(text: str) -> bool:
    """True when ``text`` uses no template syntax but the known ``{{variable}}`` placeholders."""
    return _TEMPLATE.fullmatch(text) is not None


def _template_rule(field: str) -> Rule:
    return Rule(
        rule=f"self.{field}.matches(r'^{TEMPLATE_PATTERN}$')",
        message=(
            f"{field} may only use the placeholders {{{{revision}}}}, {{{{stable_revision}}}}, "
            "{{namespace}} and {{name}}"
        ),
        check=lambda m: is_template(getattr(m, field)),
        field_path=f".{field}",
    )


class Pause(ApiModel):
    """Stop at the current weight, for a while or until promoted."""

    duration: Duration | None = Field(
        default=None,
        description=(
            "How long to wait before the next step, such as 30s, 2m or 1h30m. "
            "Without it the rollout waits until an operator promotes it."
        ),
    )


class StepAnalysis(ApiModel):
    """Run the canary's analysis at the current weight before going on."""

    count: int = Field(
        default=3,
        ge=1,
        le=100,
        description=(
            "How many measurements to take, one per analysis interval (rounds in which a "
            "provider failed do not count). The step passes once they are taken with failures "
            "within failureLimit and inconclusive ones within inconclusiveLimit."
        ),
    )


class CanaryStep(ApiModel):
    """One step of the canary: exactly one of setWeight, pause or analysis."""

    __rules__ = (
        Rule(
            rule=(
                "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0)"
                " + (has(self.analysis) ? 1 : 0) == 1"
            ),
            message="a step must set exactly one of setWeight, pause or analysis",
            check=lambda s: present(s.set_weight, s.pause, s.analysis) == 1,
        ),
    )

    set_weight: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Percentage of traffic (and replicas) to give the canary, 1 to 100.",
    )
    pause: Pause | None = Field(
        default=None,
        description="Wait at the current weight, for a duration or until promoted.",
    )
    analysis: StepAnalysis | None = Field(
        default=None,
        description="Measure the canary with the metrics of rollout.canary.analysis.",
    )


class ThresholdRange(ApiModel):
    """The range a metric's value must stay in; a bound that is left out is open."""

    __rules__ = (
        Rule(
            rule="has(self.min) || has(self.max)",
            message="thresholdRange needs min, max or both",
            check=lambda t: present(t.min, t.max) >= 1,
            reason="FieldValueRequired",
        ),
        Rule(
            rule="!has(self.min) || !has(self.max) || self.min <= self.max",
            message="thresholdRange.min must not exceed thresholdRange.max",
            check=lambda t: t.min is None or t.max is None or t.min <= t.max,
            field_path=".min",
        ),
    )

    min: float | None = Field(default=None, description="Lowest acceptable value, inclusive.")
    max: float | None = Field(default=None, description="Highest acceptable value, inclusive.")


class PrometheusQuery(ApiModel):
    """A PromQL instant query that returns one number."""

    __rules__ = (_template_rule("query"),)

    address: Url = Field(
        description=(
            "Base URL of the Prometheus HTTP API, such as http://prometheus:9090; the query "
            "is sent as GET {address}/api/v1/query."
        )
    )
    query: str = Field(
        min_length=1,
        max_length=4096,
        description=(
            "PromQL expression returning one sample or a scalar; an empty result is no data, "
            f"more than one series an error. {_TEMPLATE_HELP}."
        ),
    )
    timeout_seconds: int = Field(
        default=10,
        ge=1,
        le=60,
        description=_TIMEOUT_HELP,
    )


class Header(ApiModel):
    """One HTTP request header with a plain value."""

    __rules__ = (
        Rule(
            rule="!(self.name.lowerAscii() in " + str(list(CREDENTIAL_HEADERS)) + ")",
            message=(
                "headers must not carry credentials (Authorization, Proxy-Authorization, Cookie)"
            ),
            check=lambda h: h.name.lower() not in CREDENTIAL_HEADERS,
            field_path=".name",
            reason="FieldValueForbidden",
        ),
    )

    name: Annotated[str, Field(pattern=HEADER_NAME_PATTERN, min_length=1, max_length=128)] = (
        Field(description="Header name, such as Accept or X-Scope-OrgID.")
    )
    value: Annotated[str, Field(pattern=HEADER_VALUE_PATTERN, max_length=1024)] = Field(
        description=(
            "Header value in printable ASCII, sent as is (no placeholders): visible to anyone "
            "who can read the PaymentService."
        )
    )


class WebQuery(ApiModel):
    """An HTTP GET whose JSON response holds the number at a JSON path."""

    __rules__ = (_template_rule("url"),)

    url: Url = Field(description=f"URL to GET. {_TEMPLATE_HELP}.")
    json_path: str = Field(
        min_length=1,
        max_length=256,
        description=(
            "JSONPath of the value in the response (jsonpath-ng syntax), such as "
            "$.data.ratio, data.ratio or $.results[0].value; it must select exactly one "
            "value: a number, a numeric string (NaN, +Inf and -Inf included) or null (no data)."
        ),
    )
    headers: list[Header] | None = Field(
        default=None,
        max_length=16,
        description=(
            "Request headers with plain values, never secrets: Authorization, "
            "Proxy-Authorization and Cookie are refused."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    timeout_seconds: int = Field(default=10, ge=1, le=60, description=_TIMEOUT_HELP)

    @model_validator(mode="after")
    def _unique_headers(self) -> WebQuery:
        unique((h.name for h in self.headers or ()), "header name")
        return self


class Metric(ApiModel):
    """One measured signal of canary health: exactly one of prometheus or web."""

    __rules__ = (
        Rule(
            rule="(has(self.prometheus) ? 1 : 0) + (has(self.web) ? 1 : 0) == 1",
            message="a metric must set exactly one of prometheus or web",
            check=lambda m: present(m.prometheus, m.web) == 1,
        ),
    )

    name: DnsLabel = Field(description="Name of the metric, unique within the analysis.")
    prometheus: PrometheusQuery | None = Field(
        default=None, description="Measure with a Prometheus instant query."
    )
    web: WebQuery | None = Field(
        default=None, description="Measure with an HTTP GET returning JSON."
    )
    threshold_range: ThresholdRange = Field(
        description="The range a successful measurement falls in.",
    )


Builtin = Literal["paymentSuccess"]


class PaymentSuccess(ApiModel):
    """Tuning of the built-in ``paymentSuccess`` analysis (every field has a default).

    Canary and stable are compared over the same window: the success ratio of payment
    creations (success / (success + declined + error)) by a one-sided two-proportion z-test
    (Agresti-Caffo), and p99 latency of ``POST /api/v1/payments`` by a one-sided Mann-Whitney
    U test on per-interval p99 values.  Either fails only when the test finds the canary worse
    than the stable revision by more than the tolerance at the significance level.
    """

    window: Duration = Field(
        default="10m",
        description="How far back each measurement looks, for both revisions, such as 10m.",
    )
    latency_interval: Duration = Field(
        default="1m",
        description=(
            "Length of each interval whose p99 latency is one sample of the latency test "
            "(window / latencyInterval samples per revision); at least two scrape intervals."
        ),
    )
    min_payments: int = Field(
        default=50,
        ge=1,
        le=1_000_000,
        description=(
            "Payments each revision must have had in the window before it is judged; with "
            "fewer the measurement has no data (see onNoData)."
        ),
    )
    min_latency_samples: int = Field(
        default=5,
        ge=3,
        le=1000,
        description="Per-interval p99 values each revision needs before latency is judged.",
    )
    max_success_ratio_drop: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description=(
            "How far below the stable success ratio the canary's may be, absolute "
            "(0.01: one percentage point)."
        ),
    )
    max_latency_increase: float = Field(
        default=0.2,
        ge=0,
        le=100,
        description="How much higher the canary's p99 latency may be, relative (0.2: 20%).",
    )
    significance: float = Field(
        default=0.05,
        ge=0.0001,
        le=0.5,
        description=(
            "The tests' significance level: a metric fails when its p-value is below it."
        ),
    )


class Analysis(ApiModel):
    """How the canary is measured during analysis steps: custom metrics or a built-in one.

    Each measurement queries every metric once.  It is Failed when a metric fails (out of its
    threshold range, or no usable value under ``onNoData: fail``), else an error when a
    provider failed, else Inconclusive when a metric is, else Successful.
    """

    __rules__ = (
        Rule(
            rule="has(self.metrics) != has(self.builtin)",
            message="an analysis sets exactly one of metrics or builtin",
            check=lambda a: present(a.metrics, a.builtin) == 1,
        ),
        Rule(
            rule="has(self.builtin) == has(self.prometheusAddress)",
            message="prometheusAddress is required with builtin, and only with it",
            check=lambda a: (a.builtin is None) == (a.prometheus_address is None),
            field_path=".prometheusAddress",
        ),
        Rule(
            rule=(
                "!has(self.paymentSuccess) || "
                "(has(self.builtin) && self.builtin == 'paymentSuccess')"
            ),
            message="paymentSuccess tunes builtin: paymentSuccess and needs it",
            check=lambda a: a.payment_success is None or a.builtin == "paymentSuccess",
            field_path=".paymentSuccess",
        ),
    )

    interval: Duration = Field(
        default="30s",
        description=(
            "Time from one measurement (or failed attempt) to the next, such as 30s or 1m."
        ),
    )
    initial_delay: Duration | None = Field(
        default=None,
        description=(
            "Time from the start of an analysis step to its first measurement; without it "
            "the first measurement is taken at once."
        ),
    )
    failure_limit: int = Field(
        default=2,
        ge=0,
        le=100,
        description=(
            "Failed measurements tolerated in a step; one more ends the analysis as Failed "
            "and aborts the rollout."
        ),
    )
    inconclusive_limit: int = Field(
        default=2,
        ge=0,
        le=100,
        description=(
            "Inconclusive measurements tolerated in a step; one more ends the analysis as "
            "Inconclusive and pauses the rollout."
        ),
    )
    consecutive_error_limit: int = Field(
        default=4,
        ge=0,
        le=100,
        description=(
            "Measurements in a row that a provider failed (timeout, connection refused, "
            "HTTP error, bad response) tolerated; one more ends the analysis as Error and "
            "aborts the rollout. Any measurement without a provider failure resets the count."
        ),
    )
    on_no_data: OnNoData = Field(
        default="inconclusive",
        description=(
            "What a metric without a usable value (an empty result, NaN, +Inf or -Inf) counts "
            "as: inconclusive, fail (a failed measurement) or pass (a successful one for an "
            "empty result; NaN, +Inf and -Inf still count as inconclusive, so they never pass)."
        ),
    )
    metrics: list[Metric] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description=(
            "The metrics to measure; every one must pass for a measurement to pass. "
            "Exclusive with builtin."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    builtin: Builtin | None = Field(
        default=None,
        description=(
            "A built-in analysis instead of metrics: paymentSuccess compares the canary's "
            "payment success ratio and p99 latency with the stable revision's, with "
            "statistical tests (see paymentSuccess). Needs prometheusAddress."
        ),
    )
    prometheus_address: Url | None = Field(
        default=None,
        description=(
            "Base URL of the Prometheus HTTP API the built-in analysis queries, such as "
            "http://prometheus-operated.monitoring:9090."
        ),
    )
    payment_success: PaymentSuccess | None = Field(
        default=None,
        description="Window, minimum sample sizes, tolerances and significance of paymentSuccess.",
    )

    @model_validator(mode="after")
    def _unique_metrics(self) -> Analysis:
        unique((m.name for m in self.metrics or ()), "metric name")
        return self


def _weights(canary: Canary) -> list[int]:
    return [s.set_weight for s in canary.steps if s.set_weight is not None]


def _strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


class Canary(ApiModel):
    """Move traffic to the new revision in steps, measuring it on the way."""

    __rules__ = (
        Rule(
            rule=(
                "self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted() && "
                "self.steps.filter(a, has(a.setWeight)).all(a, self.steps.filter(b, "
                "has(b.setWeight) && b.setWeight == a.setWeight).size() == 1)"
            ),
            message="setWeight values must strictly increase from step to step",
            check=lambda c: _strictly_increasing(_weights(c)),
            field_path=".steps",
        ),
        Rule(
            rule="!self.steps.exists(s, has(s.analysis)) || has(self.analysis)",
            message="analysis steps need rollout.canary.analysis with the metrics to measure",
            check=lambda c: c.analysis is not None or all(s.analysis is None for s in c.steps),
            field_path=".analysis",
            reason="FieldValueRequired",
        ),
    )

    steps: list[CanaryStep] = Field(
        min_length=1,
        max_length=32,
        description=(
            "The steps, in order. After the last one the canary is promoted: it becomes "
            "the stable revision at full size."
        ),
    )
    max_surge: int = Field(
        default=1,
        ge=0,
        le=100,
        description=(
            "Extra pods allowed above spec.replicas while the canary runs; 0 keeps the total "
            "fixed (for Kafka consumers that need a fixed replica count)."
        ),
    )
    analysis: Analysis | None = Field(
        default=None,
        description="Metrics and limits used by the analysis steps.",
    )


class Rollout(ApiModel):
    """How a change of the pod template reaches production."""

    canary: Canary | None = Field(
        default=None,
        description=(
            "Canary strategy. Without it a new revision replaces the stable one at once, "
            "still after secrets, topics and migrations are ready."
        ),
    )
    progress_deadline_seconds: int = Field(
        default=600,
        ge=30,
        le=86400,
        description=(
            "Seconds a setWeight step or the promotion may wait for its pods to be ready "
            "before the rollout is aborted; pauses and analysis steps (which have their own "
            "limits) do not count."
        ),
    )
