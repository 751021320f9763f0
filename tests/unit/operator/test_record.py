"""The rollout's Events are posted before the status write, and exactly once across a crash.

An operator killed between the Event post and the status write decides the same transition
again from the same stored status: its second post must be refused by name, not repeated.
"""

from datetime import UTC, datetime

import pytest
from payment_operator.kube import record
from payment_operator.kube.client import KubeError
from payment_operator.rollout.state import Event

from tests.unit.operator.fake_kube import FakeKube
from tests.unit.operator.test_reconcile import NAME, _pass, _ps

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _events(kube: FakeKube) -> list[dict]:
    return [obj for (kind, _, _), obj in sorted(kube.objects.items()) if kind == "Event"]


def test_the_rollout_event_is_posted_before_the_status_records_it():
    kube = FakeKube()
    _ps(kube)

    _pass(kube)

    writes = [(verb, kind) for verb, kind, _ in kube.writes() if verb != "apply"]
    assert writes == [("create", "Event"), ("patch_status", "PaymentService")]
    (event,) = _events(kube)
    assert event["reason"] == "RolloutStarted" and event["type"] == "Normal"
    assert event["involvedObject"]["name"] == NAME
    assert event["involvedObject"]["uid"] == kube.stored("PaymentService", "payments",
                                                         NAME)["metadata"]["uid"]


def test_a_pass_replayed_after_a_lost_status_write_posts_no_second_event():
    kube = FakeKube()
    _ps(kube)
    # The operator dies after posting, before its status write lands.
    kube.status_errors = [KubeError(0, "Unreachable", "connection refused")] * 10
    with pytest.raises(KubeError):
        _pass(kube)
    assert kube.stored("PaymentService", "payments", NAME).get("status") is None
    assert len(_events(kube)) == 1

    kube.status_errors = []
    _pass(kube)  # the replay decides the same step from the same status

    assert len(_events(kube)) == 1
    assert kube.stored("PaymentService", "payments", NAME)["status"]["phase"]


def test_the_name_follows_the_status_the_decision_started_from():
    obj = {"metadata": {"name": "pay", "uid": "u1"}, "status": {"phase": "Healthy"}}
    same = {"metadata": {"name": "pay", "uid": "u1"}, "status": {"phase": "Healthy"}}
    moved = {"metadata": {"name": "pay", "uid": "u1"}, "status": {"phase": "Progressing"}}
    other = {"metadata": {"name": "pay", "uid": "u2"}, "status": {"phase": "Healthy"}}

    name = record.event_name(obj, 0, "StepCompleted")
    assert name.startswith("pay.") and name == record.event_name(same, 0, "StepCompleted")
    assert name != record.event_name(moved, 0, "StepCompleted")
    assert name != record.event_name(other, 0, "StepCompleted")
    assert name != record.event_name(obj, 1, "StepCompleted")
    assert name != record.event_name(obj, 0, "Promoted")


def test_a_refused_post_is_logged_and_the_pass_goes_on(caplog):
    kube = FakeKube()
    kube.apply_errors["Event"] = KubeError(403, "Forbidden", "events is forbidden")
    obj = {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
           "metadata": {"name": "pay", "namespace": "payments", "uid": "u"}}

    record.post(kube, obj, [Event("Normal", "Promoted", "x" * 5000)], NOW)

    assert "could not post event" in caplog.text and _events(kube) == []


def test_a_long_message_is_cut_to_what_the_api_server_keeps():
    obj = {"apiVersion": "paydeck.dev/v1alpha1", "kind": "PaymentService",
           "metadata": {"name": "pay", "namespace": "payments", "uid": "u"}}
    body = record.manifest(obj, Event("Warning", "RolloutAborted", "y" * 5000), "pay.1", NOW)
    assert len(body["message"]) == record.MAX_MESSAGE
    assert body["firstTimestamp"] == "2025-01-02T03:04:05Z" and body["count"] == 1
