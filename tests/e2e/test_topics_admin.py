"""topicProvisioner admin end to end: the operator process creates the topics on the session's
real broker through the Kafka admin API, and TopicsReady gates the rollout.

The broker listens on the loopback, where the operator runs; the runtime pods are kwok's and
never connect.  Then the broker is stopped: a new revision waits at TopicsReady False
(KafkaUnreachable) while the stable one keeps serving and another PaymentService still
becomes Healthy; once the broker is back the rollout finishes by itself.  With
topicDeletionPolicy Delete, deleting the PaymentService deletes its topics from the broker.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.e2e.conftest import condition, get_json, wait_for
from tests.e2e.test_rollout import (
    IMAGE_1,
    IMAGE_2,
    NAME,
    apply,
    deployments,
    events,
    healthy,
    ps,
    service,
    set_image,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def _topics_ready(cluster, namespace, status: str, reason: str):
    def check():
        obj = ps(cluster, namespace)
        cond = condition(obj, "TopicsReady")
        ok = cond.get("status") == status and cond.get("reason") == reason
        return obj if ok else None
    return check


def test_admin_topics_are_created_and_gate_the_rollout(cluster, namespace, operator, kafka):
    suffix = uuid.uuid4().hex[:8]
    events_topic, audit_topic = f"e2e.payment.events.{suffix}", f"e2e.audit.{suffix}"
    body = service(replicas=2)
    body["spec"]["kafka"] = {
        "bootstrapServers": kafka.bootstrap_servers,
        "topicProvisioner": "admin",
        "topics": [
            {"name": events_topic, "partitions": 3, "replicas": 1,
             "config": {"retention.ms": "3600000"}},
            {"name": audit_topic, "partitions": 1, "replicas": 1},
        ],
    }
    apply(cluster, namespace, body)

    obj = wait_for(healthy(cluster, namespace, IMAGE_1), 120, "the first revision Healthy",
                   operator)
    gate = condition(obj, "TopicsReady")
    assert (gate["status"], gate["reason"]) == ("True", "Ready"), gate
    assert kafka.bootstrap_servers in gate["message"]
    assert "KafkaTopicsChanged" in events(cluster, namespace)

    own = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    described = own.describe_topics(TopicCollection([events_topic, audit_topic]),
                                    request_timeout=10)
    shapes = {name: (len(f.result(15).partitions), len(f.result(15).partitions[0].replicas))
              for name, f in described.items()}
    assert shapes == {events_topic: (3, 1), audit_topic: (1, 1)}
    resource = ConfigResource(ResourceType.TOPIC, events_topic)
    config = own.describe_configs([resource], request_timeout=10)[resource].result(15)
    assert config["retention.ms"].value == "3600000"

    # Kafka goes away: the next revision waits at the gate, nothing else does.
    kafka.stop()
    try:
        set_image(cluster, namespace, IMAGE_2)
        waiting = wait_for(_topics_ready(cluster, namespace, "False", "KafkaUnreachable"), 90,
                           "TopicsReady False with KafkaUnreachable", operator)
        assert kafka.bootstrap_servers in condition(waiting, "TopicsReady")["message"]
        assert waiting["status"]["phase"] == "Progressing"
        assert "TopicsReady" in waiting["status"]["message"]
        assert deployments(cluster, namespace)[IMAGE_1] == (2, 2)  # stable keeps serving
        assert IMAGE_2 not in deployments(cluster, namespace) or (
            deployments(cluster, namespace)[IMAGE_2][0] == 0)

        other = service(replicas=1)
        other["metadata"]["name"] = "other"
        apply(cluster, namespace, other)

        def other_healthy():
            obj = get_json(cluster, "paysvc", "other", "-n", namespace)
            return obj if (obj or {}).get("status", {}).get("phase") == "Healthy" else None

        wait_for(other_healthy, 90, "a PaymentService without Kafka Healthy meanwhile", operator)
    finally:
        kafka.start()  # later tests use the session broker

    # No edit needed: the closed gate is polled, and the rollout resumes once Kafka answers.
    obj = wait_for(healthy(cluster, namespace, IMAGE_2), 150,
                   "the second revision Healthy after Kafka came back", operator)
    assert condition(obj, "TopicsReady")["status"] == "True"
    assert obj["metadata"]["name"] == NAME


def test_delete_policy_deletes_the_topics_with_the_service(cluster, namespace, operator, kafka):
    topic = f"e2e.deleted.{uuid.uuid4().hex[:8]}"
    body = service(replicas=1)
    body["spec"]["kafka"] = {"bootstrapServers": kafka.bootstrap_servers,
                             "topicProvisioner": "admin", "topicDeletionPolicy": "Delete",
                             "topics": [{"name": topic, "partitions": 1, "replicas": 1}]}
    apply(cluster, namespace, body)
    wait_for(_topics_ready(cluster, namespace, "True", "Ready"), 90, "TopicsReady True", operator)
    own = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    assert topic in own.list_topics(timeout=10).topics

    cluster.kubectl("delete", "paysvc", NAME, "-n", namespace, "--timeout=60s")

    wait_for(lambda: topic not in own.list_topics(timeout=10).topics, 30,
             "the topic deleted from the broker", operator)
