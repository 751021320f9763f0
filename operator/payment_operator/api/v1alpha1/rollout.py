"""How a new revision reaches production: canary steps, metric analysis, deadlines.

The shape follows Argo Rollouts' canary strategy (``setWeight`` / ``pause`` / ``analysis``
steps) with the analysis template inlined, because one PaymentService owns one rollout.
"""

from __future__ import annotations

import itertools
from typing import Literal

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
            "How many measurements to take, one per analysis interval; the step passes "
            "when they are done without reaching the failure limit."
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
    """A PromQL query that returns one number."""

    address: Url = Field(
        description="Base URL of the Prometheus server, such as http://prometheus:9090."
    )
    query: str = Field(
        min_length=1,
        max_length=4096,
        description=(
            "PromQL expression returning a single sample; it may use {{revision}} and "
            "{{namespace}} placeholders for the canary revision and the namespace."
        ),
    )


class Metric(ApiModel):
    """One measured signal of canary health."""

    name: DnsLabel = Field(description="Name of the metric, unique within the analysis.")
    prometheus: PrometheusQuery = Field(description="Where and how to measure the metric.")
    threshold_range: ThresholdRange = Field(
        description="The range a successful measurement falls in.",
    )


class Analysis(ApiModel):
    """How the canary is measured during analysis steps."""

    interval: Duration = Field(
        default="30s", description="Time between two measurements, such as 30s or 1m."
    )
    initial_delay: Duration | None = Field(
        default=None,
        description="Time to wait after a step starts before the first measurement.",
    )
    failure_limit: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Failed measurements tolerated; one more aborts the rollout.",
    )
    inconclusive_limit: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Inconclusive measurements tolerated; one more pauses the rollout.",
    )
    on_no_data: OnNoData = Field(
        default="inconclusive",
        description=(
            "What an empty or NaN query result counts as: inconclusive (pause when over the "
            "limit), fail (count as a failure) or pass (count as a success)."
        ),
    )
    metrics: list[Metric] = Field(
        min_length=1,
        max_length=8,
        description="The metrics to measure; every one must pass for a measurement to pass.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _unique_metrics(self) -> Analysis:
        unique((m.name for m in self.metrics), "metric name")
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
            "Seconds a step may go without progress (pods not ready, analysis not done) "
            "before the rollout is aborted; pauses without a duration do not count."
        ),
    )
