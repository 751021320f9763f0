"""An in-memory Kafka cluster behind the AdminClient calls the operator makes.

Each call answers with already-completed futures, as confluent-kafka's would once the
cluster answered; ``down`` makes every call fail with ``_TIMED_OUT`` (a broker that is
gone).  ``calls`` records every call by name.  The real thing is tested in
tests/integration/test_topics_admin.py.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from payment_operator.topics import AdminClients

WRITES = {"create_topics", "create_partitions", "incremental_alter_configs", "delete_topics"}


def _done(value: Any = None, error: int | None = None) -> Future:
    future: Future = Future()
    if error is not None:
        future.set_exception(KafkaException(KafkaError(error)))
    else:
        future.set_result(value)
    return future


@dataclass
class FakeKafka:
    """Topics by name: {"partitions": n, "replicas": r, "config": {...}}."""

    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    calls: list[str] = field(default_factory=list)
    #: Topics that exist but that DescribeTopics does not know yet (just created elsewhere).
    lagging: set[str] = field(default_factory=set)
    #: Created topics stay unknown to this many DescribeTopics calls (the broker's metadata
    #: follows the controller a moment later).
    describe_lag: int = 0
    _lag: dict[str, int] = field(default_factory=dict)

    def writes(self) -> list[str]:
        return [c for c in self.calls if c in WRITES]

    def _answer(self, name: str, keys: list[Any], each) -> dict[Any, Future]:
        self.calls.append(name)
        if self.down:
            return {k: _done(error=KafkaError._TIMED_OUT) for k in keys}
        return {k: each(k) for k in keys}

    def describe_topics(self, topics, **_: Any) -> dict[Any, Future]:
        def each(name: str) -> Future:
            topic = self.topics.get(name)
            if self._lag.get(name):
                self._lag[name] -= 1
                return _done(error=KafkaError.UNKNOWN_TOPIC_OR_PART)
            if topic is None or name in self.lagging:
                return _done(error=KafkaError.UNKNOWN_TOPIC_OR_PART)
            partition = SimpleNamespace(replicas=[object()] * topic["replicas"])
            return _done(SimpleNamespace(name=name, partitions=[partition] * topic["partitions"]))

        return self._answer("describe_topics", list(topics.topic_names), each)

    def describe_configs(self, resources, **_: Any) -> dict[Any, Future]:
        def each(resource) -> Future:
            config = self.topics[resource.name]["config"]
            return _done({k: SimpleNamespace(name=k, value=v) for k, v in config.items()})

        return self._answer("describe_configs", list(resources), each)

    def create_topics(self, new_topics, **_: Any) -> dict[Any, Future]:
        specs = {t.topic: t for t in new_topics}

        def each(name: str) -> Future:
            if name in self.topics:
                return _done(error=KafkaError.TOPIC_ALREADY_EXISTS)
            t = specs[name]
            self._lag[name] = self.describe_lag
            self.topics[name] = {"partitions": t.num_partitions,
                                 "replicas": t.replication_factor, "config": dict(t.config)}
            return _done()

        return self._answer("create_topics", list(specs), each)

    def create_partitions(self, new_partitions, **_: Any) -> dict[Any, Future]:
        wanted = {p.topic: p.new_total_count for p in new_partitions}

        def each(name: str) -> Future:
            self.topics[name]["partitions"] = wanted[name]
            return _done()

        return self._answer("create_partitions", list(wanted), each)

    def incremental_alter_configs(self, resources, **_: Any) -> dict[Any, Future]:
        def each(resource) -> Future:
            for entry in resource.incremental_configs:
                self.topics[resource.name]["config"][entry.name] = entry.value
            return _done()

        return self._answer("incremental_alter_configs", list(resources), each)

    def delete_topics(self, topics, **_: Any) -> dict[Any, Future]:
        def each(name: str) -> Future:
            if self.topics.pop(name, None) is None:
                return _done(error=KafkaError.UNKNOWN_TOPIC_OR_PART)
            return _done()

        return self._answer("delete_topics", list(topics), each)


def admins(cluster: FakeKafka, timeout: float = 1.0) -> tuple[AdminClients, list[dict]]:
    """AdminClients whose every client is ``cluster``; the list gets each client's config."""
    configs: list[dict] = []

    def factory(config: dict) -> FakeKafka:
        configs.append(config)
        return cluster

    return AdminClients(timeout, factory=factory), configs
