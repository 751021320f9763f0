"""Secret-store bindings, Kafka topics and Prometheus children: gating and wiring."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
import yaml
from payment_operator.api import PaymentService, parse
from payment_operator.builders import (
    Capabilities,
    Context,
    build_all,
    kafka,
    meta,
    monitoring,
    secrets,
)

from tests.unit.builders.cases import (
    ALL_CAPABILITIES,
    PROVIDERS,
    minimal_body,
    sample,
    store_body,
)

pytestmark = pytest.mark.unit
FULL = Context(capabilities=ALL_CAPABILITIES)
OPTIONAL_GROUPS = (
    "monitoring.coreos.com/",
    "external-secrets.io/",
    "secrets-store.csi.x-k8s.io/",
    "kafka.strimzi.io/",
)


def ps(**spec: Any) -> PaymentService:
    return parse(minimal_body(**spec))


def _with_store(provider: str, backend: str) -> PaymentService:
    return parse(store_body(provider, backend))


@pytest.mark.parametrize("body", [sample("full"), sample("aws")], ids=["full", "aws"])
def test_no_optional_api_child_without_its_capability(body: dict[str, Any]) -> None:
    children = build_all(parse(body), Context(capabilities=Capabilities()))
    assert not [c["kind"] for c in children if c["apiVersion"].startswith(OPTIONAL_GROUPS)]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_external_secret_syncs_every_store_object_into_the_secrets_secret(provider: str) -> None:
    p = _with_store(provider, "external-secrets")
    store, external = secrets.external_secrets(p, FULL)
    assert store["kind"] == "SecretStore"
    [(kind, cfg)] = store["spec"]["provider"].items()
    assert (
        kind
        == {"azure-keyvault": "azurekv", "aws-secrets-manager": "aws", "vault": "vault"}[provider]
    )
    assert "pay" in str(cfg)  # authenticates as the pods' ServiceAccount
    spec = external["spec"]
    assert spec["secretStoreRef"] == {"kind": "SecretStore", "name": "pay"}
    assert spec["target"]["name"] == "pay-secrets"
    assert [(d["secretKey"], d["remoteRef"]["key"]) for d in spec["data"]] == [
        ("DATABASE_URL", "db-url"),
        ("STRIPE_KEY", "stripe"),
    ]
    assert spec["data"][1]["remoteRef"]["version"] == "7"
    assert secrets.secret_provider_class(p, FULL) is None
    assert secrets.external_secrets(p, Context()) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_secret_provider_class_syncs_every_store_object(provider: str) -> None:
    p = _with_store(provider, "csi")
    spc = secrets.secret_provider_class(p, FULL)
    assert spc is not None
    assert (
        spc["spec"]["provider"]
        == {
            "azure-keyvault": "azure",
            "aws-secrets-manager": "aws",
            "vault": "vault",
        }[provider]
    )
    [synced] = spc["spec"]["secretObjects"]
    assert synced["secretName"] == "pay-secrets"
    assert [d["key"] for d in synced["data"]] == ["DATABASE_URL", "STRIPE_KEY"]
    # The providers parse `objects` as YAML; each mounted file is named after the store object.
    objects = yaml.safe_load(spc["spec"]["parameters"]["objects"])
    if provider == "azure-keyvault":
        objects = [yaml.safe_load(item) for item in objects["array"]]
    mounted = [o.get("objectAlias", o["objectName"]) for o in objects]
    assert mounted == [d["objectName"] for d in synced["data"]]
    assert secrets.external_secrets(p, FULL) == []
    assert secrets.secret_provider_class(p, Context()) is None


def _strimzi(namespace: str | None = None, provisioner: str = "strimzi") -> PaymentService:
    strimzi = {"clusterName": "main", **({"namespace": namespace} if namespace else {})}
    return ps(
        kafka={
            "bootstrapServers": "k:9092",
            "topicProvisioner": provisioner,
            **({"strimzi": strimzi} if provisioner == "strimzi" else {}),
            "topics": [
                {"name": "payment.events", "config": {"retention.ms": "1"}},
                {"name": "Payment_Events"},
                {"name": "payment-events"},
            ],
        }
    )


def test_kafka_topics_are_strimzi_resources_with_the_real_topic_name() -> None:
    topics = kafka.kafka_topics(_strimzi(), FULL)
    assert [t["spec"]["topicName"] for t in topics] == [
        "payment.events",
        "Payment_Events",
        "payment-events",
    ]
    names = [t["metadata"]["name"] for t in topics]
    assert len(set(names)) == 3
    assert names[0] == "pay-payment.events"
    assert all(n.startswith("pay-") and n == n.lower() and "_" not in n for n in names)
    assert all(t["metadata"]["labels"]["strimzi.io/cluster"] == "main" for t in topics)
    assert topics[0]["spec"]["config"] == {"retention.ms": "1"}
    assert "config" not in topics[1]["spec"]


def test_kafka_topics_only_with_strimzi_served_and_where_the_operator_sees() -> None:
    assert kafka.kafka_topics(_strimzi(), Context()) == []
    assert kafka.kafka_topics(_strimzi(provisioner="none"), FULL) == []
    assert len(kafka.kafka_topics(_strimzi(namespace="payments"), FULL)) == 3
    assert len(kafka.kafka_topics(_strimzi(namespace="kafka"), FULL)) == 3
    watching = replace(FULL, watch_namespaces=("payments",))
    assert kafka.kafka_topics(_strimzi(namespace="kafka"), watching) == []
    assert len(kafka.kafka_topics(
        _strimzi(namespace="kafka"), replace(watching, watch_namespaces=("payments", "kafka"))
    )) == 3


def test_kafka_topics_in_the_strimzi_namespace_are_owned_by_labels() -> None:
    service = _strimzi(namespace="kafka")
    here = kafka.kafka_topics(_strimzi(), FULL)
    there = kafka.kafka_topics(service, FULL)
    assert [t["spec"] for t in there] == [t["spec"] for t in here]
    for topic in there:
        meta = topic["metadata"]
        assert meta["namespace"] == "kafka"
        assert "ownerReferences" not in meta  # one cannot cross namespaces
        assert meta["labels"]["paydeck.dev/owner-uid"] == service.metadata.uid
        assert meta["labels"]["paydeck.dev/owner-namespace"] == "payments"
        assert meta["labels"]["paydeck.dev/paymentservice"] == "pay"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "paydeck-operator"
        assert meta["labels"]["strimzi.io/cluster"] == "main"
    # Named after the PaymentService's namespace too: two "pay"s never meet in "kafka".
    assert [t["metadata"]["name"] for t in there] == [
        f"payments.{t['metadata']['name']}" for t in here]
    for topic in here:
        assert topic["metadata"]["ownerReferences"][0]["uid"] == service.metadata.uid
        assert "paydeck.dev/owner-uid" not in topic["metadata"]["labels"]


#: What the API server accepts as an object name (k8s.io/apimachinery IsDNS1123Subdomain).
DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


@pytest.mark.parametrize("namespace", [None, "k" * 63])
@pytest.mark.parametrize(
    "topic", ["a..b", "a.-b", "-x-.y.", "A" * 249, "b" * 249, "a.b" * 83, "_", "payment.events"]
)
def test_kafka_topic_names_are_always_valid_and_distinct(topic: str, namespace: str | None) -> None:
    service = _strimzi(namespace=namespace)
    name = kafka.topic_resource_name(service, topic)
    assert len(name) <= kafka.MAX_NAME
    assert re.fullmatch(DNS1123_SUBDOMAIN, name), name
    others = {"a.b", topic + "x", topic[:-1] or "z", topic.upper(), topic.lower()} - {topic}
    assert name not in {kafka.topic_resource_name(service, o) for o in others}


def test_kafka_topic_names_that_were_valid_keep_their_name() -> None:
    # Existing KafkaTopics are found by these names: the rule may only change invalid ones.
    service = _strimzi()
    assert kafka.topic_resource_name(service, "payment.events") == "pay-payment.events"
    assert kafka.topic_resource_name(service, "Payment_Events") == (
        f"pay-payment-events-{meta.short_hash('Payment_Events', 6)}")


def test_prometheus_children_need_the_flag_and_the_capability() -> None:
    on = ps(monitoring={"serviceMonitor": True, "labels": {"release": "prom"}})
    off = ps(monitoring={"serviceMonitor": False})
    assert monitoring.service_monitor(on, Context()) is None
    assert monitoring.prometheus_rule(on, Context()) is None
    assert monitoring.service_monitor(off, FULL) is None
    monitor = monitoring.service_monitor(on, FULL)
    rule = monitoring.prometheus_rule(on, FULL)
    assert monitor is not None
    assert rule is not None
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert rule["metadata"]["labels"]["release"] == "prom"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}
    alerts = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert alerts == ["PaymentServiceHighErrorRatio", "PaymentServicePodsNotReady"]


def test_monitoring_labels_never_override_child_labels() -> None:
    p = ps(monitoring={"serviceMonitor": True, "labels": {"app.kubernetes.io/instance": "x"}})
    monitor = monitoring.service_monitor(p, FULL)
    assert monitor is not None
    assert monitor["metadata"]["labels"]["app.kubernetes.io/instance"] == "pay"


@pytest.mark.parametrize(
    ("interval", "emitted"),
    [("30s", "30s"), ("90s", "90s"), ("1m30s", "1m30s"), ("1500ms", "1500ms"),
     ("30s1m", "1m30s"), ("1m1m", "2m"), ("500ms2s", "2s500ms"), ("0ms0s", "0s")],
)
def test_service_monitor_interval_is_one_the_upstream_schema_accepts(
    interval: str, emitted: str
) -> None:
    p = ps(monitoring={"serviceMonitor": True, "interval": interval})
    sm = monitoring.service_monitor(p, FULL)
    assert sm is not None
    [endpoint] = sm["spec"]["endpoints"]
    assert endpoint["interval"] == emitted
    assert monitoring.PROMETHEUS_DURATION.fullmatch(emitted)
