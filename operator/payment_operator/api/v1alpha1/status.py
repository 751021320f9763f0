"""The observed state of a PaymentService, written only by the operator (and user commands).

``phase`` is a one-word summary for humans and Argo CD; ``conditions`` follow the
metav1.Condition shape and kstatus (``Ready``, ``Reconciling``, ``Stalled``) so ``kubectl
wait`` and Argo CD read them right.  ``kopf`` holds Kopf's progress and diff base.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from payment_operator.api.v1alpha1.base import ApiModel, Int32, Int64, unique

Phase = Literal["Pending", "Progressing", "Healthy", "Paused", "Degraded"]
ConditionStatus = Literal["True", "False", "Unknown"]
AnalysisPhase = Literal["Running", "Successful", "Failed", "Inconclusive", "Error"]
MeasurementPhase = Literal["Successful", "Failed", "Inconclusive", "Error"]
MigrationPhase = Literal["Running", "Succeeded", "Failed"]
CommandAction = Literal["promote", "promoteFull", "abort", "retry"]

#: Condition types the operator maintains.
CONDITION_TYPES = (
    "Ready",
    "Reconciling",
    "Stalled",
    "Progressing",
    "Degraded",
    "SecretsReady",
    "MigrationsApplied",
    "TopicsReady",
    "CurrencyRatesReady",
    "MonitoringReady",
    "PodsHealthy",
)

CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class StatusModel(ApiModel):
    """Base of status models: tolerant of fields written by newer operators."""

    model_config = ConfigDict(extra="ignore")


class Condition(StatusModel):
    """One aspect of the current state, in the shape of metav1.Condition."""

    type: str = Field(
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
        description="Type of the condition, such as Ready.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: Int64 | None = Field(
        default=None, ge=0, description="metadata.generation the condition was set for."
    )
    last_transition_time: datetime = Field(
        description="When the status last changed from one value to another."
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="CamelCase reason for the last transition.",
    )
    message: str = Field(max_length=32768, description="Human-readable details of the transition.")


class Comparison(StatusModel):
    """Canary against stable, for a metric of the built-in analysis."""

    canary_value: str | None = Field(
        default=None, max_length=64, description="The canary's value (NaN included)."
    )
    stable_value: str | None = Field(
        default=None, max_length=64, description="The stable revision's value."
    )
    canary_samples: Int64 = Field(
        default=0, ge=0, description="Payments (or latency points) the canary's value is from."
    )
    stable_samples: Int64 = Field(
        default=0, ge=0, description="Payments (or latency points) the stable value is from."
    )
    test: str = Field(max_length=128, description="The statistical test applied.")
    p_value: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Its one-sided p-value for 'the canary is worse by more than the tolerance'; "
            "absent when there were too few samples to test."
        ),
    )


class MetricMeasurement(StatusModel):
    """The last measurement of one metric."""

    name: str = Field(max_length=63, description="Name of the metric.")
    value: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "The value measured, as text (NaN, +Inf and -Inf included); absent when there "
            "was no data or the provider failed."
        ),
    )
    phase: MeasurementPhase = Field(
        description="Successful, Failed, Inconclusive or Error (the provider failed)."
    )
    message: str | None = Field(
        default=None, max_length=1024, description="The value against the threshold, or the error."
    )
    measured_at: datetime = Field(description="When the metric was measured.")
    comparison: Comparison | None = Field(
        default=None,
        description="Canary and stable values, sample sizes and test (built-in analysis only).",
    )


class AnalysisStatus(StatusModel):
    """Progress of the analysis of the current canary step."""

    phase: AnalysisPhase | None = Field(
        default=None,
        description=(
            "Running, or the outcome: Successful (count measurements taken within the limits), "
            "Failed, Inconclusive or Error (a limit was exceeded)."
        ),
    )
    measurements: Int32 = Field(
        default=0, ge=0, description="Measurements taken (rounds with a provider failure excluded)."
    )
    successes: Int32 = Field(default=0, ge=0, description="Successful measurements.")
    failures: Int32 = Field(default=0, ge=0, description="Failed measurements.")
    inconclusive: Int32 = Field(default=0, ge=0, description="Inconclusive measurements.")
    consecutive_errors: Int32 = Field(
        default=0, ge=0, description="Measurement rounds in a row in which a provider failed."
    )
    started_at: datetime | None = Field(default=None, description="When the analysis started.")
    last_measured_at: datetime | None = Field(
        default=None, description="Time of the last measurement round, failed attempts included."
    )
    message: str | None = Field(
        default=None, max_length=4096, description="Last measured values or the failure."
    )
    metrics: list[MetricMeasurement] | None = Field(
        default=None,
        max_length=8,
        description="The last measurement of each metric.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class CanaryStatus(StatusModel):
    """Where the canary stands; the state machine resumes from it after a restart."""

    step_index: Int32 = Field(
        default=0, ge=0, description="Index of the current step in rollout.canary.steps."
    )
    step_started_at: datetime | None = Field(
        default=None, description="When the current step began."
    )
    weight: Int32 = Field(
        default=0, ge=0, le=100, description="Weight requested by the steps so far."
    )
    actual_weight: Int32 = Field(
        default=0,
        ge=0,
        le=100,
        description="Weight actually served: ready canary pods over all ready pods.",
    )
    paused: bool = Field(default=False, description="The canary waits at a pause step.")
    aborted: bool = Field(default=False, description="The canary was aborted; stable serves alone.")
    abort_reason: str | None = Field(
        default=None,
        max_length=4096,
        description="Why the canary was aborted: the reason, then the metric, Job or deadline.",
    )
    analysis: AnalysisStatus | None = Field(
        default=None, description="Analysis of the current step."
    )


class MigrationStatus(StatusModel):
    """The migration Job of the newest revision that needed one (success is remembered here
    after the Job itself is garbage-collected, so it never runs twice)."""

    revision: str | None = Field(
        default=None, max_length=64, description="Revision the migration ran for."
    )
    job: str | None = Field(default=None, max_length=253, description="Name of the migration Job.")
    phase: MigrationPhase | None = Field(default=None, description="State of the Job.")
    applied_at: datetime | None = Field(default=None, description="When the migration succeeded.")
    message: str | None = Field(
        default=None, max_length=4096, description="Why the Job failed, if it did."
    )


class Command(StatusModel):
    """A user command written through the status subresource (by the kubectl plugin)."""

    action: CommandAction = Field(
        description=(
            "promote (skip the current pause or analysis), promoteFull (skip all steps), "
            "abort (back to stable) or retry (restart an aborted rollout)."
        ),
    )
    requested_at: datetime = Field(description="When the command was given; newer ones win.")
    requested_by: str | None = Field(
        default=None, max_length=256, description="Who gave the command."
    )


class PaymentServiceStatus(StatusModel):
    """The observed state of a payment service."""

    observed_generation: Int64 | None = Field(
        default=None, ge=0, description="metadata.generation the operator last acted on."
    )
    phase: Phase | None = Field(
        default=None, description="One-word summary for humans and Argo CD."
    )
    message: str | None = Field(
        default=None, max_length=32768, description="Why the service is not Healthy, if it is not."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=32,
        description="Current conditions (Ready, Reconciling, Stalled, Degraded, ...).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: Int32 | None = Field(
        default=None,
        ge=0,
        description="Pods of the service, stable and canary (scale subresource).",
    )
    ready_replicas: Int32 | None = Field(default=None, ge=0, description="Ready pods.")
    updated_replicas: Int32 | None = Field(
        default=None, ge=0, description="Pods of the newest revision."
    )
    selector: str | None = Field(
        default=None,
        max_length=1024,
        description="Label selector of the pods, for the scale subresource.",
    )
    stable_revision: str | None = Field(
        default=None, max_length=64, description="Revision serving production traffic."
    )
    canary_revision: str | None = Field(
        default=None, max_length=64, description="Revision being rolled out, if any."
    )
    stable_image: str | None = Field(
        default=None, max_length=512, description="Image of the stable revision."
    )
    canary_image: str | None = Field(
        default=None, max_length=512, description="Image of the canary revision."
    )
    canary: CanaryStatus | None = Field(default=None, description="Progress of the canary.")
    migration: MigrationStatus | None = Field(default=None, description="The last migration.")
    command: Command | None = Field(default=None, description="The latest user command.")
    last_handled_command_at: datetime | None = Field(
        default=None, description="requestedAt of the last command the operator carried out."
    )
    kopf: dict[str, Any] | None = Field(
        default=None, description="Kopf's own progress and diff-base storage."
    )

    @model_validator(mode="after")
    def _unique_conditions(self) -> PaymentServiceStatus:
        unique((c.type for c in self.conditions or ()), "condition type")
        return self

    def condition(self, type_: str) -> Condition | None:
        """The condition of this type, if set."""
        return next((c for c in self.conditions or () if c.type == type_), None)
