"""manifests/argocd/health.lua: Argo CD's view of a PaymentService, from its status alone.

Each case builds a PaymentService whose status has the shape of the status model (checked with
``PaymentServiceStatus``), runs the shipped script under Lua 5.1 as Argo CD would, and checks
the health status and message.  A second group feeds it statuses computed by the operator's own
``conditions.desired_status``, so the script and the operator agree on names and shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from payment_operator import conditions
from payment_operator.api.v1alpha1.status import PaymentServiceStatus

from tests.unit.packaging import lua

pytestmark = pytest.mark.unit

GENERATION = 4
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def cond(type_: str, status: str, reason: str = "AsExpected", message: str = "",
         generation: int | None = GENERATION) -> dict[str, Any]:
    c: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message or f"{type_} is {status}",
        "lastTransitionTime": "2026-01-02T03:00:00Z",
    }
    if generation is not None:
        c["observedGeneration"] = generation
    return c


def healthy_conditions(generation: int = GENERATION) -> list[dict[str, Any]]:
    return [
        cond("Ready", "True", "AllReplicasReady", "3/3 replicas ready", generation),
        cond("Reconciling", "False", "Reconciled", "3/3 replicas ready", generation),
        cond("Progressing", "False", "RolloutComplete", "3/3 replicas ready", generation),
        cond("Degraded", "False", "AsExpected", "no failures", generation),
        cond("Stalled", "False", "AsExpected", "making progress", generation),
    ]


def replace(conds: list[dict[str, Any]], *new: dict[str, Any]) -> list[dict[str, Any]]:
    by_type = {c["type"]: c for c in conds}
    by_type.update({c["type"]: c for c in new})
    return list(by_type.values())


def payment_service(status: dict[str, Any] | None,
                    generation: int = GENERATION) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "paydeck.dev/v1alpha1",
        "kind": "PaymentService",
        "metadata": {"name": "payments", "namespace": "shop", "generation": generation},
        "spec": {"image": "ghcr.io/paydeck/payment-runtime:1.4.2"},
    }
    if status is not None:
        PaymentServiceStatus.model_validate(status)  # the shape the operator writes
        obj["status"] = status
    return obj


def health(obj: dict[str, Any]) -> tuple[str, str]:
    result = lua.run(lua.HEALTH, obj)
    return result["status"], result["message"]


def test_healthy_when_ready_for_the_current_generation() -> None:
    status = {"observedGeneration": GENERATION, "phase": "Healthy",
              "message": "3/3 replicas ready", "conditions": healthy_conditions()}
    assert health(payment_service(status)) == ("Healthy", "3/3 replicas ready")


def test_progressing_without_status() -> None:
    state, message = health(payment_service(None))
    assert state == "Progressing"
    assert "observe" in message


def test_progressing_until_the_new_generation_is_observed() -> None:
    # A stale Healthy status (generation 3) must not make a fresh sync look done.
    status = {"observedGeneration": GENERATION - 1, "phase": "Healthy",
              "conditions": healthy_conditions(GENERATION - 1)}
    state, message = health(payment_service(status))
    assert state == "Progressing"
    assert message == f"Waiting for the operator to observe generation {GENERATION}"


def test_progressing_when_observed_generation_is_missing() -> None:
    status = {"phase": "Healthy", "conditions": healthy_conditions()}
    assert health(payment_service(status))[0] == "Progressing"


def test_stale_degraded_status_is_progressing_not_degraded() -> None:
    conds = replace(healthy_conditions(GENERATION - 1),
                    cond("Degraded", "True", "MigrationFailed", "old failure", GENERATION - 1))
    status = {"observedGeneration": GENERATION - 1, "phase": "Degraded", "conditions": conds}
    assert health(payment_service(status))[0] == "Progressing"


def test_progressing_when_ready_condition_is_for_an_older_generation() -> None:
    conds = replace(healthy_conditions(),
                    cond("Ready", "True", "AllReplicasReady", "3/3", GENERATION - 1))
    status = {"observedGeneration": GENERATION, "phase": "Healthy", "conditions": conds}
    state, message = health(payment_service(status))
    assert state == "Progressing"
    assert str(GENERATION) in message


def test_progressing_while_reconciling() -> None:
    text = "rolling out revision 5d9c7f: 1/3 replicas ready"
    conds = replace(healthy_conditions(),
                    cond("Ready", "False", "RollingOut", text),
                    cond("Reconciling", "True", "RollingOut", text),
                    cond("Progressing", "True", "RollingOut", text))
    status = {"observedGeneration": GENERATION, "phase": "Progressing", "message": text,
              "conditions": conds}
    assert health(payment_service(status)) == ("Progressing", text)


def test_progressing_condition_alone_is_progressing() -> None:
    conds = replace(healthy_conditions(),
                    cond("Progressing", "True", "CanaryStep", "canary at 10%"))
    status = {"observedGeneration": GENERATION, "phase": "Healthy", "conditions": conds}
    assert health(payment_service(status)) == ("Progressing", "canary at 10%")


def test_phase_healthy_but_not_ready_is_progressing() -> None:
    conds = replace(healthy_conditions(), cond("Ready", "False", "Waiting", "0/3 replicas ready"))
    status = {"observedGeneration": GENERATION, "phase": "Healthy", "conditions": conds}
    assert health(payment_service(status))[0] == "Progressing"


def test_ready_but_phase_not_healthy_is_progressing() -> None:
    status = {"observedGeneration": GENERATION, "phase": "Pending",
              "conditions": healthy_conditions()}
    assert health(payment_service(status))[0] == "Progressing"


def test_degraded_with_the_condition_message() -> None:
    conds = replace(healthy_conditions(),
                    cond("Degraded", "True", "MigrationFailed",
                         "migration Job payments-migrate-5d9c7f failed: relation exists"))
    status = {"observedGeneration": GENERATION, "phase": "Degraded",
              "message": "summary", "conditions": conds}
    assert health(payment_service(status)) == (
        "Degraded", "migration Job payments-migrate-5d9c7f failed: relation exists"
    )


def test_degraded_wins_over_reconciling() -> None:
    # A retryable failure: the operator keeps trying (Reconciling) but reports Degraded.
    conds = replace(healthy_conditions(),
                    cond("Ready", "False", "ApiError", "apply failed"),
                    cond("Reconciling", "True", "ApiError", "apply failed"),
                    cond("Degraded", "True", "ApiError", "apply failed: 503"))
    status = {"observedGeneration": GENERATION, "phase": "Degraded", "conditions": conds}
    assert health(payment_service(status)) == ("Degraded", "apply failed: 503")


def test_stalled_is_degraded_with_its_message() -> None:
    conds = replace(healthy_conditions(),
                    cond("Stalled", "True", "ProgressDeadlineExceeded",
                         "revision 5d9c7f did not progress in 600s"))
    status = {"observedGeneration": GENERATION, "phase": "Progressing", "conditions": conds}
    assert health(payment_service(status)) == (
        "Degraded", "revision 5d9c7f did not progress in 600s"
    )


def test_degraded_phase_without_condition_uses_status_message() -> None:
    status = {"observedGeneration": GENERATION, "phase": "Degraded",
              "message": "canary analysis failed: payment-success 0.91 < 0.99"}
    assert health(payment_service(status)) == (
        "Degraded", "canary analysis failed: payment-success 0.91 < 0.99"
    )


def test_paused_canary_is_suspended() -> None:
    conds = replace(healthy_conditions(),
                    cond("Ready", "False", "CanaryPaused", "canary paused"),
                    cond("Progressing", "True", "CanaryPaused", "canary paused at 10%"))
    status = {
        "observedGeneration": GENERATION,
        "phase": "Paused",
        "conditions": conds,
        "canaryRevision": "5d9c7f",
        "canary": {"stepIndex": 1, "weight": 10, "actualWeight": 10, "paused": True},
    }
    assert health(payment_service(status)) == ("Suspended", "Canary paused at step 1")


def test_paused_uses_status_message_when_set() -> None:
    status = {"observedGeneration": GENERATION, "phase": "Paused",
              "message": "waiting for promote at step 4"}
    assert health(payment_service(status)) == ("Suspended", "waiting for promote at step 4")


def test_degraded_wins_over_paused() -> None:
    conds = replace(healthy_conditions(), cond("Degraded", "True", "AnalysisFailed", "analysis"))
    status = {"observedGeneration": GENERATION, "phase": "Paused", "conditions": conds}
    assert health(payment_service(status))[0] == "Degraded"


def test_the_model_validation_of_cases_is_real() -> None:
    # The shape check in payment_service() must reject what the operator could never write.
    with pytest.raises(ValueError, match="phase"):
        payment_service({"observedGeneration": GENERATION, "phase": "Running"})


# -- statuses computed by the operator itself --------------------------------------------------


def operator_status(phase: str, message: str, failure: conditions.Failure | None = None,
                    abort_reason: str = "") -> dict[str, Any]:
    obs = conditions.Observation(
        generation=GENERATION, selector="app=payments", phase=phase, message=message,
        replicas=3, ready_replicas=3, abort_reason=abort_reason, failure=failure,
    )
    return conditions.desired_status(obs, {}, NOW)


@pytest.mark.parametrize(("phase", "health_status"), [
    ("Healthy", "Healthy"), ("Progressing", "Progressing"), ("Paused", "Suspended"),
    ("Degraded", "Degraded"),
])
def test_operator_status_of_each_phase_has_its_health(phase: str, health_status: str) -> None:
    reason = "AnalysisFailed: success=0.5 below min 0.95" if phase == "Degraded" else ""
    status = operator_status(phase, f"the rollout is {phase}", abort_reason=reason)
    assert health(payment_service(status)) == (health_status, f"the rollout is {phase}")


def test_operator_status_of_a_failure_is_degraded_with_its_message() -> None:
    failure = conditions.Failure("InvalidSecretStore", "vault payments-kv not found", False)
    state, message = health(payment_service(operator_status("Healthy", "3/3", failure)))
    assert (state, message) == ("Degraded", "vault payments-kv not found")
