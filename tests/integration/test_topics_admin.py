"""topicProvisioner admin against the session's real KRaft broker.

The operator's :class:`~payment_operator.topics.AdminClients` reconciles topics through a real
confluent-kafka AdminClient wrapped to count its calls, so "a second reconcile changes
nothing" is a count of write calls, not a guess.  What the broker ends up with is read back
with an AdminClient of the test's own; out-of-band changes are made the same way.  The broker
is stopped (and started again) to see the reconcile report it, within the admin timeout.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from payment_operator.rollout import gates
from payment_operator.rollout.topics import WantedTopic
from payment_operator.topics import AdminClients, admin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

#: The admin calls that change the cluster.
WRITES = {"create_topics", "create_partitions", "incremental_alter_configs", "alter_configs",
          "delete_topics"}
TIMEOUT = 3.0


class Counting:
    """A real AdminClient that counts the calls made through it."""

    def __init__(self, config: dict) -> None:
        self.client = AdminClient(config)
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            self.calls[name] += 1
            return method(*args, **kwargs)

        return call

    def writes(self) -> int:
        return sum(n for name, n in self.calls.items() if name in WRITES)


class Clients(AdminClients):
    """AdminClients whose clients count their calls; ``made`` keeps every client built."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.made: list[Counting] = []
        super().__init__(timeout, factory=self._make)

    def _make(self, config: dict) -> Counting:
        client = Counting(config)
        self.made.append(client)
        return client

    @property
    def calls(self) -> Counter[str]:
        return sum((c.calls for c in self.made), Counter())

    def writes(self) -> int:
        return sum(c.writes() for c in self.made)

    def reset(self) -> None:
        for client in self.made:
            client.calls.clear()


@pytest.fixture
def clients():
    made = Clients()
    yield made
    made.close()


@pytest.fixture
def own(kafka) -> AdminClient:
    """The test's own client, to read what the broker has and to change it out of band."""
    return AdminClient({"bootstrap.servers": kafka.bootstrap_servers})


def _name(what: str) -> str:
    return f"paydeck.test.{what}.{uuid.uuid4().hex[:8]}"


def _partitions(own: AdminClient, topic: str) -> tuple[int, int]:
    """(partitions, replication factor) of ``topic`` on the broker.

    A topic created a moment ago may not be in the answering broker's metadata yet: ask again
    for a few seconds before taking "unknown topic" for an answer.
    """
    deadline = time.monotonic() + 10
    while True:
        future = own.describe_topics(TopicCollection([topic]), request_timeout=10)[topic]
        try:
            desc = future.result(15)
            return len(desc.partitions), len(desc.partitions[0].replicas)
        except KafkaException as err:
            if (err.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART
                    or time.monotonic() > deadline):
                raise
            time.sleep(0.2)


def _config(own: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = own.describe_configs([resource], request_timeout=10)[resource].result(15)
    return {k: e.value for k, e in entries.items()}


def _alter(own: AdminClient, topic: str, values: dict[str, str]) -> None:
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in values.items()])
    own.incremental_alter_configs([resource], request_timeout=10)[resource].result(15)


def test_topics_are_created_as_asked_and_a_second_reconcile_writes_nothing(kafka, clients, own):
    events, audit = _name("events"), _name("audit")
    wanted = [
        WantedTopic(events, 6, 1, {"retention.ms": "3600000", "cleanup.policy": "delete"}),
        WantedTopic(audit, 2, 1, {"cleanup.policy": "compact"}),
    ]

    report = clients.reconcile(kafka.bootstrap_servers, wanted)

    assert not report.unreachable and not report.failures, report
    assert gates.admin_topics_gate(report).open
    assert _partitions(own, events) == (6, 1)
    assert _partitions(own, audit) == (2, 1)
    config = _config(own, events)
    assert (config["retention.ms"], config["cleanup.policy"]) == ("3600000", "delete")
    assert _config(own, audit)["cleanup.policy"] == "compact"
    assert clients.calls["create_topics"] == 1 and clients.writes() == 1

    clients.reset()
    again = clients.reconcile(kafka.bootstrap_servers, wanted)

    assert again.done == () and not again.failures and not again.unreachable
    assert clients.writes() == 0, clients.calls
    # Two reads (topics, then their configs) on the one client of this bootstrap string.
    assert clients.calls == Counter({"describe_topics": 1, "describe_configs": 1})
    gate = gates.admin_topics_gate(again)
    assert (gate.open, gate.reason) == (True, "Ready")
    assert len(clients.made) == 1 and clients.bootstraps() == [kafka.bootstrap_servers]


def test_partitions_are_raised(kafka, clients, own):
    topic = _name("grow")
    clients.reconcile(kafka.bootstrap_servers, [WantedTopic(topic, 2, 1)])
    clients.reset()

    report = clients.reconcile(kafka.bootstrap_servers, [WantedTopic(topic, 5, 1)])

    assert report.done == (f"raised {topic} from 2 to 5 partitions",)
    assert clients.calls["create_partitions"] == 1 and clients.writes() == 1
    assert _partitions(own, topic) == (5, 1)
    assert gates.admin_topics_gate(report).open


def test_fewer_partitions_are_refused_and_not_attempted(kafka, clients, own):
    topic, other = _name("shrink"), _name("beside")
    clients.reconcile(kafka.bootstrap_servers, [WantedTopic(topic, 4, 1)])
    clients.reset()

    # The other topic is still created: a refused decrease blocks only its own topic.
    report = clients.reconcile(kafka.bootstrap_servers,
                               [WantedTopic(topic, 2, 1), WantedTopic(other, 1, 1)])

    assert clients.calls["create_partitions"] == 0
    assert clients.calls["create_topics"] == 1
    assert _partitions(own, topic) == (4, 1)
    assert _partitions(own, other) == (1, 1)
    gate = gates.admin_topics_gate(report)
    assert (gate.open, gate.reason) == (False, "PartitionDecreaseRefused")
    assert f"{topic} has 4 partitions on the cluster and the spec asks for 2" in gate.message

    clients.reset()
    # Still refused on the next pass, still without a write.
    gate = gates.admin_topics_gate(clients.reconcile(
        kafka.bootstrap_servers, [WantedTopic(topic, 2, 1), WantedTopic(other, 1, 1)]))
    assert gate.reason == "PartitionDecreaseRefused" and clients.writes() == 0


def test_drift_on_owned_keys_is_restored_and_foreign_keys_are_left_alone(kafka, clients, own):
    topic = _name("drift")
    wanted = [WantedTopic(topic, 1, 1, {"retention.ms": "3600000"})]
    clients.reconcile(kafka.bootstrap_servers, wanted)
    # Someone changes the key the spec owns, and sets one the spec does not mention.
    _alter(own, topic, {"retention.ms": "60000", "max.message.bytes": "2097152"})
    assert _config(own, topic)["retention.ms"] == "60000"
    clients.reset()

    report = clients.reconcile(kafka.bootstrap_servers, wanted)

    assert report.done == (f"restored retention.ms on {topic}",)
    assert clients.calls["incremental_alter_configs"] == 1 and clients.writes() == 1
    config = _config(own, topic)
    assert config["retention.ms"] == "3600000"
    assert config["max.message.bytes"] == "2097152"  # not ours: left as it was set
    clients.reset()
    assert clients.reconcile(kafka.bootstrap_servers, wanted).done == ()
    assert clients.writes() == 0


def test_a_stopped_broker_is_reported_within_the_timeout_and_the_restart_is_picked_up(
        kafka, clients, own):
    topic = _name("outage")
    wanted = [WantedTopic(topic, 3, 1, {"retention.ms": "3600000"})]
    first = clients.reconcile(kafka.bootstrap_servers, [WantedTopic(_name("before"), 1, 1)])
    assert not first.unreachable  # the client is connected before the broker goes
    kafka.stop()
    try:
        started = time.monotonic()
        report = clients.reconcile(kafka.bootstrap_servers, wanted)
        took = time.monotonic() - started

        assert report.unreachable, report
        assert took <= TIMEOUT + admin.GRACE_SECONDS + 1, took
        gate = gates.admin_topics_gate(report)
        assert (gate.open, gate.reason) == (False, "KafkaUnreachable")
        assert kafka.bootstrap_servers in gate.message
        # A client built while the broker is down does no better, and no worse.
        fresh = Clients()
        started = time.monotonic()
        assert fresh.reconcile(kafka.bootstrap_servers, wanted).unreachable
        assert time.monotonic() - started <= TIMEOUT + admin.GRACE_SECONDS + 1
        fresh.close()
    finally:
        kafka.start()  # later tests use the session broker

    deadline = time.monotonic() + 60
    while True:
        report = clients.reconcile(kafka.bootstrap_servers, wanted)
        if not report.unreachable or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not report.unreachable and not report.failures, report
    assert gates.admin_topics_gate(report).open
    assert _partitions(own, topic) == (3, 1)
    assert len(clients.made) == 1  # the same client, reconnected


def test_deletion_deletes_only_what_it_is_given_and_a_missing_topic_is_fine(kafka, clients, own):
    gone, kept = _name("gone"), _name("kept")
    clients.reconcile(kafka.bootstrap_servers, [WantedTopic(gone, 1, 1), WantedTopic(kept, 1, 1)])
    never = _name("never")

    result = clients.delete(kafka.bootstrap_servers, [gone, never])

    assert result.ok and result.deleted == (gone,) and result.missing == (never,)
    deadline = time.monotonic() + 30
    while gone in own.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    topics = own.list_topics(timeout=10).topics
    assert gone not in topics and kept in topics
