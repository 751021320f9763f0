"""The pure planner of topicProvisioner admin (wanted vs described topics -> changes), and the
TopicsReady gate it turns into."""

from __future__ import annotations

import pytest
from payment_operator.api import v1alpha1 as api
from payment_operator.rollout import gates, topics
from payment_operator.rollout.topics import (
    ConfigChange,
    Growth,
    LiveTopic,
    Refusal,
    Report,
    TopicPlan,
    WantedTopic,
)

from tests.unit.builders.cases import minimal_body

pytestmark = pytest.mark.unit

EVENTS = WantedTopic("payment.events", 6, 3, {"retention.ms": "604800000"})
LIVE_EVENTS = LiveTopic("payment.events", 6, 3, {"retention.ms": "604800000"})


@pytest.mark.parametrize(
    ("wanted", "live", "expected"),
    [
        pytest.param([], {}, TopicPlan(), id="nothing-wanted"),
        pytest.param([EVENTS], {}, TopicPlan(create=(EVENTS,)), id="missing-is-created"),
        pytest.param([EVENTS], {"payment.events": None}, TopicPlan(create=(EVENTS,)),
                     id="described-as-absent-is-created"),
        pytest.param([EVENTS], {"payment.events": LIVE_EVENTS}, TopicPlan(), id="as-wanted"),
        pytest.param(
            [EVENTS], {"payment.events": LiveTopic("payment.events", 3, 3, EVENTS.config)},
            TopicPlan(grow=(Growth("payment.events", 3, 6),)), id="more-partitions-grow"),
        pytest.param(
            [EVENTS], {"payment.events": LiveTopic("payment.events", 12, 3, EVENTS.config)},
            TopicPlan(refused=(Refusal("payment.events", 12, 6),)),
            id="fewer-partitions-refused"),
        pytest.param(
            [EVENTS], {"payment.events": LiveTopic("payment.events", 6, 3, {"retention.ms": "1"})},
            TopicPlan(alter=(ConfigChange("payment.events", {"retention.ms": "604800000"},
                                          {"retention.ms": "1"}),)),
            id="owned-key-drifted"),
        pytest.param(
            [EVENTS], {"payment.events": LiveTopic("payment.events", 6, 3, {})},
            TopicPlan(alter=(ConfigChange("payment.events", {"retention.ms": "604800000"},
                                          {"retention.ms": None}),)),
            id="owned-key-not-described"),
        pytest.param(
            [WantedTopic("t", 1, 1)], {"t": LiveTopic("t", 1, 1, {"retention.ms": "1"})},
            TopicPlan(), id="foreign-key-left-alone"),
        pytest.param(
            [WantedTopic("t", 1, 1, {"a": "1", "b": "2"})],
            {"t": LiveTopic("t", 1, 1, {"a": "1", "b": "3", "c": "4"})},
            TopicPlan(alter=(ConfigChange("t", {"b": "2"}, {"b": "3"}),)),
            id="only-drifted-owned-keys"),
        pytest.param(
            [WantedTopic("t", 1, 3)], {"t": LiveTopic("t", 1, 1)},
            TopicPlan(notes=("t has replication factor 1 on the cluster, the spec says 3 (left "
                             "as is: changing it takes a partition reassignment)",)),
            id="replication-factor-only-noted"),
        pytest.param(
            [WantedTopic("t", 2, 1, {"a": "1"})], {"t": LiveTopic("t", 4, 1, {"a": "0"})},
            TopicPlan(alter=(ConfigChange("t", {"a": "1"}, {"a": "0"}),),
                      refused=(Refusal("t", 4, 2),)),
            id="refused-decrease-still-restores-config"),
        pytest.param(
            [WantedTopic("new", 1, 1), WantedTopic("small", 3, 1), WantedTopic("big", 1, 1)],
            {"small": LiveTopic("small", 1, 1), "big": LiveTopic("big", 2, 1)},
            TopicPlan(create=(WantedTopic("new", 1, 1),), grow=(Growth("small", 1, 3),),
                      refused=(Refusal("big", 2, 1),)),
            id="each-topic-on-its-own"),
    ],
)
def test_plan(wanted, live, expected):
    assert topics.plan(wanted, live) == expected
    assert topics.plan(wanted, live).writes == bool(
        expected.create or expected.grow or expected.alter)


def test_wanted_topics_follow_the_spec_with_defaults():
    kafka = api.Kafka.model_validate({
        "bootstrapServers": "k:9092", "topicProvisioner": "admin",
        "topics": [{"name": "b", "config": {"z": "1", "a": "2"}}, {"name": "a", "partitions": 1,
                                                                  "replicas": 1}]})
    assert topics.wanted_topics(kafka) == (WantedTopic("b", 3, 3, {"a": "2", "z": "1"}),
                                           WantedTopic("a", 1, 1, {}))
    assert topics.wanted_topics(None) == ()


def test_change_messages_say_what_was_done():
    assert EVENTS.message == "created payment.events (6 partitions, replication factor 3)"
    assert Growth("t", 1, 3).message == "raised t from 1 to 3 partitions"
    assert ConfigChange("t", {"b": "1", "a": "2"}, {}).message == "restored a, b on t"
    assert Refusal("t", 4, 2).message.startswith(
        "t has 4 partitions on the cluster and the spec asks for 2: Kafka cannot remove")


BOOT = "kafka:9092"


@pytest.mark.parametrize(
    ("report", "open_", "reason", "text"),
    [
        pytest.param(None, False, "Pending", "not been reconciled", id="no-report"),
        pytest.param(Report(BOOT, None, unreachable="_TIMED_OUT: Local: Timed out", wanted=1),
                     False, "KafkaUnreachable",
                     "Kafka at kafka:9092 did not answer: _TIMED_OUT: Local: Timed out",
                     id="unreachable"),
        pytest.param(Report(BOOT, TopicPlan(refused=(Refusal("t", 4, 2),)), wanted=1),
                     False, "PartitionDecreaseRefused", "t has 4 partitions", id="decrease"),
        pytest.param(Report(BOOT, TopicPlan(create=(WantedTopic("t", 1, 3),)),
                            failures=("creating t: INVALID_REPLICATION_FACTOR: only 1 broker",),
                            wanted=1),
                     False, "TopicChangeRefused",
                     "Kafka at kafka:9092 refused: creating t: INVALID_REPLICATION_FACTOR",
                     id="refused-by-the-cluster"),
        pytest.param(Report(BOOT, None, failures=("ValueError: odd",), wanted=1),
                     False, "TopicChangeRefused", "ValueError: odd", id="unexpected-error"),
        pytest.param(Report(BOOT, TopicPlan(), wanted=2), True, "Ready",
                     "2 topic(s) as specified on kafka:9092", id="ready"),
        pytest.param(Report(BOOT, TopicPlan(create=(WantedTopic("t", 1, 1),)),
                            done=("created t (1 partitions, replication factor 1)",), wanted=1),
                     True, "Ready", "as specified on kafka:9092 (created t (1 partitions",
                     id="ready-after-creating"),
        pytest.param(Report(BOOT, TopicPlan(notes=("t has replication factor 1",)), wanted=1),
                     True, "Ready", "; t has replication factor 1", id="ready-with-a-note"),
    ],
)
def test_admin_gate(report, open_, reason, text):
    gate = gates.admin_topics_gate(report)
    assert (gate.type, gate.open, gate.reason) == ("TopicsReady", open_, reason)
    assert text in gate.message


def test_topics_gate_takes_the_admin_report_with_the_admin_provisioner():
    def ps(provisioner: str):
        return api.parse(minimal_body(kafka={"bootstrapServers": BOOT,
                                             "topicProvisioner": provisioner,
                                             "topics": [{"name": "t"}]}))

    report = Report(BOOT, None, unreachable="down", wanted=1)
    gate = gates.topics_gate(ps("admin"), api_served=False, topics=[], expected=1, admin=report)
    assert gate.reason == "KafkaUnreachable"  # no Strimzi needed
    assert gates.topics_gate(ps("admin"), api_served=True, topics=[], expected=1).reason == (
        "Pending")
    assert gates.topics_gate(ps("none"), api_served=False, topics=[], expected=1,
                             admin=report).reason == "NotManaged"
