"""Kafka topics as Strimzi KafkaTopic resources (topicProvisioner ``strimzi``).

A KafkaTopic is named ``<name>-<topic>`` (lower-cased, ``_`` as ``-``, plus a short hash
when that changed the name) and carries the real name in ``spec.topicName``, so two
services or odd topic names never collide.  Only topics in the PaymentService's own
namespace are built: an owner reference cannot cross namespaces (the garbage collector
would delete the topic), so a Strimzi cluster watching another namespace is reported by the
``TopicsReady`` gate as unsupported (topics there are the platform team's).
"""

from __future__ import annotations

import re
from typing import Any

from payment_operator.api.v1alpha1 import PaymentService, Topic
from payment_operator.builders import meta

GROUP = "kafka.strimzi.io"
#: KafkaTopic versions whose spec (topicName, partitions, replicas, config) is the one built
#: here, most preferred first: Strimzi 1.x serves v1 only, 0.4x releases v1beta2.  Discovery
#: asks for them in this order; the builder emits the first one served.
VERSIONS = ("v1", "v1beta2")
API_VERSIONS = tuple(f"{GROUP}/{v}" for v in VERSIONS)
API_VERSION = API_VERSIONS[0]
CLUSTER_LABEL = "strimzi.io/cluster"


def topic_resource_name(ps: PaymentService, topic: str) -> str:
    """The Kubernetes name of a topic's KafkaTopic: DNS-safe, unique per service."""
    safe = re.sub(r"[^a-z0-9.-]", "-", topic.lower()).strip(".-")
    if safe != topic:
        safe = f"{safe}-{meta.short_hash(topic, 6)}"
    return f"{meta.name(ps)}-{safe}"


def api_version(capabilities: meta.Capabilities) -> str:
    """The KafkaTopic group/version to emit: the one discovery found served."""
    return f"{GROUP}/{capabilities.strimzi_version}"


def _kafka_topic(
    ps: PaymentService, cluster: str, topic: Topic, version: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "topicName": topic.name,
        "partitions": topic.partitions,
        "replicas": topic.replicas,
    }
    if topic.config:
        spec["config"] = dict(sorted(topic.config.items()))
    return {
        "apiVersion": version,
        "kind": "KafkaTopic",
        "metadata": meta.object_meta(
            ps, topic_resource_name(ps, topic.name), extra_labels={CLUSTER_LABEL: cluster}
        ),
        "spec": spec,
    }


def kafka_topics(ps: PaymentService, ctx: meta.Context) -> list[dict[str, Any]]:
    """One KafkaTopic per spec.kafka.topics entry, when Strimzi provisions them here."""
    kafka = ps.spec.kafka
    if kafka is None or kafka.topic_provisioner != "strimzi" or kafka.strimzi is None:
        return []
    if not ctx.capabilities.strimzi:
        return []
    if kafka.strimzi.namespace not in (None, meta.namespace(ps)):
        return []
    version = api_version(ctx.capabilities)
    return [_kafka_topic(ps, kafka.strimzi.cluster_name, t, version) for t in kafka.topics or ()]
