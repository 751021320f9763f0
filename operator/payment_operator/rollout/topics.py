"""Kafka topics through the admin API (``topicProvisioner: admin``): what to change, and what a
reconcile of them came to.

Pure: :func:`plan` compares the topics the spec wants with the topics the cluster described
(``None`` for a topic that does not exist) and returns the changes to make:

- a missing topic is created with the spec's partitions, replication factor and config;
- partitions only grow: fewer partitions in the spec than on the cluster is *refused* (Kafka
  cannot remove partitions), and the topic's partitions are left alone;
- the config keys the spec lists (``topics[].config``) are the ones the operator owns: a
  value that drifted is set back; every other key is left as it is;
- the replication factor is set when a topic is created and never changed afterwards (that
  takes a partition reassignment): a difference is only noted.

The I/O (:mod:`payment_operator.topics.admin`) describes, applies the plan and returns a
:class:`Report`, from which :func:`payment_operator.rollout.gates.topics_gate` decides
``TopicsReady``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from payment_operator.api.v1alpha1 import Kafka


@dataclass(frozen=True)
class WantedTopic:
    """A topic as the spec wants it."""

    name: str
    partitions: int
    replicas: int
    config: Mapping[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """What creating it does."""
        return (f"created {self.name} ({self.partitions} partitions, replication factor "
                f"{self.replicas})")


@dataclass(frozen=True)
class LiveTopic:
    """A topic as the cluster described it (``config``: at least the keys the spec owns)."""

    name: str
    partitions: int
    replicas: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Growth:
    """Raise a topic's partitions from ``current`` to ``wanted``."""

    topic: str
    current: int
    wanted: int

    @property
    def message(self) -> str:
        return f"raised {self.topic} from {self.current} to {self.wanted} partitions"


@dataclass(frozen=True)
class ConfigChange:
    """Set owned config keys of a topic back to the spec's values (``previous``: as found)."""

    topic: str
    values: Mapping[str, str]
    previous: Mapping[str, str | None]

    @property
    def message(self) -> str:
        return f"restored {', '.join(sorted(self.values))} on {self.topic}"


@dataclass(frozen=True)
class Refusal:
    """A partition decrease the operator will not attempt."""

    topic: str
    live: int
    wanted: int

    @property
    def message(self) -> str:
        return (f"{self.topic} has {self.live} partitions on the cluster and the spec asks "
                f"for {self.wanted}: Kafka cannot remove partitions, so they are left at "
                f"{self.live} (set partitions to {self.live} or more)")


@dataclass(frozen=True)
class TopicPlan:
    """The changes that bring the cluster's topics to the spec."""

    create: tuple[WantedTopic, ...] = ()
    grow: tuple[Growth, ...] = ()
    alter: tuple[ConfigChange, ...] = ()
    refused: tuple[Refusal, ...] = ()
    #: Differences the operator notes but does not change (the replication factor).
    notes: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        """Whether carrying the plan out writes anything to the cluster."""
        return bool(self.create or self.grow or self.alter)


def wanted_topics(kafka: Kafka | None) -> tuple[WantedTopic, ...]:
    """The topics of ``spec.kafka``, in the spec's order."""
    if kafka is None:
        return ()
    return tuple(
        WantedTopic(t.name, t.partitions, t.replicas, dict(sorted((t.config or {}).items())))
        for t in kafka.topics or ()
    )


def plan(wanted: Sequence[WantedTopic], live: Mapping[str, LiveTopic | None]) -> TopicPlan:
    """The changes for ``wanted`` given ``live`` (a topic missing or None does not exist)."""
    create: list[WantedTopic] = []
    grow: list[Growth] = []
    alter: list[ConfigChange] = []
    refused: list[Refusal] = []
    notes: list[str] = []
    for topic in wanted:
        found = live.get(topic.name)
        if found is None:
            create.append(topic)
            continue
        if topic.partitions > found.partitions:
            grow.append(Growth(topic.name, found.partitions, topic.partitions))
        elif topic.partitions < found.partitions:
            refused.append(Refusal(topic.name, found.partitions, topic.partitions))
        if topic.replicas != found.replicas:
            notes.append(f"{topic.name} has replication factor {found.replicas} on the "
                         f"cluster, the spec says {topic.replicas} (left as is: changing it "
                         "takes a partition reassignment)")
        drifted = {k: v for k, v in topic.config.items() if found.config.get(k) != v}
        if drifted:
            alter.append(ConfigChange(topic.name, drifted,
                                      {k: found.config.get(k) for k in drifted}))
    return TopicPlan(tuple(create), tuple(grow), tuple(alter), tuple(refused), tuple(notes))


@dataclass(frozen=True)
class Report:
    """What one reconcile of the topics on ``bootstrap`` came to.

    ``plan`` is None when the topics could not even be described.  ``unreachable`` says why
    the cluster did not answer (a timeout, no broker up), ``failures`` which requests it
    refused (``"<topic>: <error>"``); ``done`` what was changed in this pass.
    """

    bootstrap: str
    plan: TopicPlan | None
    done: tuple[str, ...] = ()
    unreachable: str = ""
    failures: tuple[str, ...] = ()
    wanted: int = 0

