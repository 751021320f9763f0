"""Kafka topics as Strimzi KafkaTopic resources (topicProvisioner ``strimzi``).

A KafkaTopic is named ``<name>-<topic>`` (lower-cased, ``_`` as ``-``, plus a short hash
when that changed the name) and carries the real name in ``spec.topicName``, so two
services or odd topic names never collide.

In the PaymentService's own namespace a KafkaTopic is owned by reference, like every child.
In the Strimzi cluster's namespace (``spec.kafka.strimzi.namespace``) it cannot be (an owner
reference does not cross namespaces): it is owned by labels (the PaymentService's namespace,
name and uid, :func:`~payment_operator.builders.meta.label_owned_meta`), named
``<namespace>.<name>-<topic>`` so services of the same name in two namespaces never meet,
and built only where the operator can see (``Context.watch_namespaces``).
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


def topics_namespace(ps: PaymentService) -> str | None:
    """Where the KafkaTopics go (the Strimzi cluster's namespace, by default the
    PaymentService's); None when Strimzi does not provision the topics."""
    kafka = ps.spec.kafka
    if kafka is None or kafka.topic_provisioner != "strimzi" or kafka.strimzi is None:
        return None
    return kafka.strimzi.namespace or meta.namespace(ps)


def label_owned(ps: PaymentService) -> bool:
    """Whether the KafkaTopics live in another namespace, owned by labels."""
    where = topics_namespace(ps)
    return where is not None and where != meta.namespace(ps)


#: The longest Kubernetes object name (a DNS-1123 subdomain).
MAX_NAME = 253
_HASH = 6


def topic_resource_name(ps: PaymentService, topic: str) -> str:
    """The Kubernetes name of a topic's KafkaTopic: a valid DNS-1123 subdomain of at most
    253 characters, unique per service (and, in another namespace, prefixed with the
    PaymentService's: namespaces hold no dot).

    The topic is lower-cased, other characters become ``-``, and every dot-separated part
    starts and ends with a letter or digit (``a..b`` or ``a.-b`` are valid topics but not
    valid names). When that changed the topic, or the name would be too long, a short hash
    of the real topic name is appended so two topics never share a KafkaTopic.
    """
    lowered = re.sub(r"[^a-z0-9.-]", "-", topic.lower())
    safe = ".".join(part for part in (p.strip("-") for p in lowered.split(".")) if part)
    base = f"{meta.namespace(ps)}." if label_owned(ps) else ""
    base += f"{meta.name(ps)}-"
    if safe != topic or len(base) + len(safe) > MAX_NAME:
        digest = meta.short_hash(topic, _HASH)
        kept = safe[: MAX_NAME - len(base) - len(digest) - 1].rstrip(".-")
        safe = f"{kept}-{digest}" if kept else digest
    return base + safe


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
    name, labels = topic_resource_name(ps, topic.name), {CLUSTER_LABEL: cluster}
    where = topics_namespace(ps)
    metadata = (
        meta.label_owned_meta(ps, name, where, extra_labels=labels)
        if where is not None and label_owned(ps)
        else meta.object_meta(ps, name, extra_labels=labels)
    )
    return {"apiVersion": version, "kind": "KafkaTopic", "metadata": metadata, "spec": spec}


def kafka_topics(ps: PaymentService, ctx: meta.Context) -> list[dict[str, Any]]:
    """One KafkaTopic per spec.kafka.topics entry, when Strimzi provisions them and the
    operator sees their namespace."""
    kafka, where = ps.spec.kafka, topics_namespace(ps)
    if kafka is None or kafka.strimzi is None or where is None:
        return []
    if not ctx.capabilities.strimzi or not ctx.sees(where):
        return []
    version = api_version(ctx.capabilities)
    return [_kafka_topic(ps, kafka.strimzi.cluster_name, t, version) for t in kafka.topics or ()]
