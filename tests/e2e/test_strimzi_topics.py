"""KafkaTopics in the Strimzi cluster's namespace (``spec.kafka.strimzi.namespace``), with the
real operator process, the real API server and Strimzi's real KafkaTopic CRD.

No owner reference can cross namespaces, so they are owned by labels: created there,
TopicsReady follows their Ready condition (set here in place of Strimzi's topic operator, and
seen at once: a KafkaTopic event there reconciles its owner), pruned when no longer wanted,
a foreign one of the same name is never touched, and on deletion of the PaymentService they
are deleted (topicDeletionPolicy Delete) or left, handed over (Retain).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import condition, get_json, play_sync_controllers, wait_for
from tests.e2e.test_operator import _apply, _sample

pytestmark = pytest.mark.e2e

KIND = "kafkatopics.kafka.strimzi.io"
TOPICS = [{"name": "payment.events", "partitions": 3, "replicas": 1},
          {"name": "payment.refunds", "partitions": 1, "replicas": 1}]


@pytest.fixture
def strimzi_namespace(cluster) -> Iterator[str]:
    name = f"strimzi-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _service(name: str, strimzi_ns: str, policy: str) -> dict:
    ps = _sample("minimal")
    ps["metadata"]["name"] = name
    ps["spec"]["kafka"] = {
        "bootstrapServers": "payments-kafka-bootstrap.kafka:9092",
        "topicProvisioner": "strimzi", "topicDeletionPolicy": policy,
        "strimzi": {"clusterName": "payments-kafka", "namespace": strimzi_ns},
        "topics": TOPICS,
    }
    return ps


def _topics(cluster, strimzi_ns: str, uid: str) -> list[dict]:
    found = get_json(cluster, KIND, "-n", strimzi_ns, "-l", f"paydeck.dev/owner-uid={uid}")
    return sorted((found or {}).get("items", []), key=lambda t: t["metadata"]["name"])


def _topics_ready(cluster, namespace: str, name: str) -> dict:
    return condition(get_json(cluster, "paysvc", name, "-n", namespace), "TopicsReady")


def _set_ready(cluster, topic: dict, status: str) -> None:
    meta = topic["metadata"]
    cluster.kubectl("patch", KIND, meta["name"], "-n", meta["namespace"],
                    "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
                        "conditions": [{"type": "Ready", "status": status, "reason": "Test",
                                        "message": f"Ready={status} by the test",
                                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))


def _create(cluster, namespace, operator, ps: dict, strimzi_ns: str) -> tuple[str, list[dict]]:
    _apply(cluster, namespace, ps)
    name = ps["metadata"]["name"]
    uid = get_json(cluster, "paysvc", name, "-n", namespace)["metadata"]["uid"]
    topics = wait_for(lambda: (t := _topics(cluster, strimzi_ns, uid)) and len(t) == 2 and t,
                      60, "two KafkaTopics in the Strimzi namespace", operator)
    return uid, topics  # type: ignore[return-value]


def test_topics_in_another_namespace_follow_ready_and_go_with_delete(
        cluster, namespace, operator, third_party_crds, strimzi_namespace):
    ps = _service("pay", strimzi_namespace, "Delete")
    uid, topics = _create(cluster, namespace, operator, ps, strimzi_namespace)
    for topic in topics:
        meta = topic["metadata"]
        assert meta.get("ownerReferences") is None
        assert meta["labels"]["paydeck.dev/owner-namespace"] == namespace
        assert meta["labels"]["paydeck.dev/paymentservice"] == "pay"
        assert meta["labels"]["strimzi.io/cluster"] == "payments-kafka"
        assert meta["name"].startswith(f"{namespace}.pay-")
    assert sorted(t["spec"]["topicName"] for t in topics) == ["payment.events", "payment.refunds"]
    wait_for(lambda: _topics_ready(cluster, namespace, "pay").get("reason") == "NotReady",
             30, "TopicsReady False: not Ready yet", operator)

    # Strimzi (played by the test) makes them Ready: the gate opens and the service rolls out.
    assert play_sync_controllers(cluster, strimzi_namespace) == 2
    wait_for(lambda: _topics_ready(cluster, namespace, "pay").get("status") == "True",
             30, "TopicsReady True once both KafkaTopics are Ready", operator)
    wait_for(lambda: get_json(cluster, "paysvc", "pay", "-n", namespace)["status"]
             .get("phase") == "Healthy", 90, "Healthy once the gates open", operator)
    # Settled (no gate polled, resync timer 300 s here): a KafkaTopic turning not Ready in the
    # Strimzi namespace is seen at once, since its event there reconciles its owner.
    _set_ready(cluster, topics[1], "False")
    cond = wait_for(lambda: (c := _topics_ready(cluster, namespace, "pay"))
                    .get("status") == "False" and c, 45, "TopicsReady back to False", operator)
    assert topics[1]["metadata"]["name"] in cond["message"]  # type: ignore[index]
    _set_ready(cluster, topics[1], "True")
    wait_for(lambda: _topics_ready(cluster, namespace, "pay").get("status") == "True",
             30, "TopicsReady True again", operator)

    # Drift there is undone too: a KafkaTopic deleted by hand comes back.
    gone = topics[0]["metadata"]
    cluster.kubectl("delete", KIND, gone["name"], "-n", strimzi_namespace)
    wait_for(lambda: get_json(cluster, KIND, gone["name"], "-n", strimzi_namespace),
             30, "the deleted KafkaTopic recreated", operator)

    # topicDeletionPolicy Delete: the finalizer deletes them before the PaymentService goes.
    cluster.kubectl("delete", "paysvc", "pay", "-n", namespace, "--wait=false")
    wait_for(lambda: get_json(cluster, "paysvc", "pay", "-n", namespace) is None,
             60, "the PaymentService deleted", operator)
    assert _topics(cluster, strimzi_namespace, uid) == []
    assert get_json(cluster, KIND, "-n", strimzi_namespace)["items"] == []


def test_retained_topics_stay_handed_over_and_unwanted_ones_are_pruned(
        cluster, namespace, operator, third_party_crds, strimzi_namespace):
    ps = _service("keep", strimzi_namespace, "Retain")
    uid, topics = _create(cluster, namespace, operator, ps, strimzi_namespace)
    cluster.kubectl("delete", "paysvc", "keep", "-n", namespace, "--wait=false")
    wait_for(lambda: get_json(cluster, "paysvc", "keep", "-n", namespace) is None,
             60, "the PaymentService deleted", operator)
    left = _topics(cluster, strimzi_namespace, uid)
    assert [t["metadata"]["name"] for t in left] == [t["metadata"]["name"] for t in topics]
    events = cluster.kubectl("get", "events", "-n", namespace,
                             "--field-selector=involvedObject.name=keep,reason=KafkaTopicsRetained",
                             "-o", "jsonpath={.items[*].message}").stdout
    assert all(t["metadata"]["name"] in events for t in topics), events

    # A new PaymentService of the same name does not adopt them: they are another's now.
    again = _service("keep", strimzi_namespace, "Retain")
    _apply(cluster, namespace, again)
    degraded = wait_for(
        lambda: (c := condition(get_json(cluster, "paysvc", "keep", "-n", namespace),
                                "Degraded")).get("reason") == "ConflictingObject" and c,
        60, "Degraded ConflictingObject", operator)
    assert topics[0]["metadata"]["name"] in degraded["message"]  # type: ignore[index]
    assert [t["metadata"]["resourceVersion"] for t in _topics(cluster, strimzi_namespace, uid)
            ] == [t["metadata"]["resourceVersion"] for t in left]  # untouched
    for topic in left:
        cluster.kubectl("delete", KIND, topic["metadata"]["name"], "-n", strimzi_namespace)

    # Its own KafkaTopics appear; switched to topicProvisioner none, they are pruned.
    new_uid = get_json(cluster, "paysvc", "keep", "-n", namespace)["metadata"]["uid"]
    wait_for(lambda: len(_topics(cluster, strimzi_namespace, new_uid)) == 2,
             60, "the new PaymentService's KafkaTopics", operator)
    again["spec"]["kafka"] = {"bootstrapServers": "payments-kafka-bootstrap.kafka:9092",
                              "topicProvisioner": "none", "topics": TOPICS}
    _apply(cluster, namespace, again)
    wait_for(lambda: _topics(cluster, strimzi_namespace, new_uid) == [],
             60, "the KafkaTopics pruned", operator)
