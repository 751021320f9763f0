"""The gates decided from the spec, the served APIs and the live binding objects."""

from __future__ import annotations

import pytest
from payment_operator.api import parse
from payment_operator.rollout import gates

from tests.unit.builders.cases import minimal_body

pytestmark = pytest.mark.unit

READY = {"status": {"conditions": [{"type": "Ready", "status": "True", "message": "synced"}]}}
NOT_READY = {"status": {"conditions": [{"type": "Ready", "status": "False",
                                        "message": "could not get secret: AccessDenied"}]}}


def _ps(**spec):
    return parse(minimal_body(**spec))


STORE = {"backend": "external-secrets", "provider": "aws-secrets-manager",
         "aws": {"region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/pay"},
         "objects": [{"name": "DB", "remoteRef": "db-url"}]}


@pytest.mark.parametrize(("served", "binding", "ok", "reason"), [
    (False, None, False, "ExternalSecretsAPIMissing"),
    (True, None, False, "Pending"),
    (True, NOT_READY, False, "NotSynced"),
    (True, READY, True, "Synced"),
])
def test_external_secrets_gate_follows_the_external_secret(served, binding, ok, reason):
    ps = _ps(secretStore=STORE, database={"url": {"storeObject": "DB"}})
    gate = gates.secrets_gate(ps, api_served=served, binding=binding)
    assert (gate.open, gate.reason) == (ok, reason)
    if reason == "NotSynced":
        assert "AccessDenied" in gate.message  # the store's own reason reaches the status


def test_without_a_store_the_secret_refs_are_not_checked_and_say_so():
    gate = gates.secrets_gate(_ps(), api_served=False, binding=None)
    assert gate.open and "cannot read Secrets" in gate.message


def _strimzi(namespace=None):
    strimzi = {"clusterName": "k", **({"namespace": namespace} if namespace else {})}
    return _ps(kafka={"bootstrapServers": "k:9092", "topicProvisioner": "strimzi",
                      "strimzi": strimzi, "topics": [{"name": "a"}, {"name": "b"}]})


def _topic(name, ready):
    return {"metadata": {"name": name}, **(READY if ready else NOT_READY)}


@pytest.mark.parametrize(("served", "topics", "ok", "reason"), [
    (False, [], False, "StrimziAPIMissing"),
    (True, [], False, "NotReady"),
    (True, [_topic("x-a", True)], False, "NotReady"),
    (True, [_topic("x-a", True), _topic("x-b", False)], False, "NotReady"),
    (True, [_topic("x-a", True), _topic("x-b", True)], True, "Ready"),
])
def test_topics_gate_follows_every_kafka_topic(served, topics, ok, reason):
    gate = gates.topics_gate(_strimzi(), api_served=served, topics=topics, expected=2)
    assert (gate.open, gate.reason) == (ok, reason)


def test_topics_in_another_namespace_follow_their_ready_conditions():
    ready = [_topic("a", True), _topic("b", True)]
    gate = gates.topics_gate(_strimzi("kafka"), api_served=True, topics=ready, expected=2)
    assert (gate.open, gate.reason) == (True, "Ready")
    waiting = [_topic("a", True), _topic("b", False)]
    gate = gates.topics_gate(_strimzi("kafka"), api_served=True, topics=waiting, expected=2)
    assert (gate.open, gate.reason) == (False, "NotReady")
    gate = gates.topics_gate(_strimzi("kafka"), api_served=True, topics=[], expected=2)
    assert (gate.open, gate.reason) == (False, "NotReady")


def test_topics_in_a_namespace_the_operator_does_not_watch_say_so():
    gate = gates.topics_gate(_strimzi("kafka"), api_served=True, topics=[], expected=2,
                             watched=False)
    assert not gate.open and gate.reason == "NamespaceNotWatched"
    assert "kafka" in gate.message


@pytest.mark.parametrize(("monitoring", "served", "children", "expected"), [
    (None, True, [], None),
    ({"serviceMonitor": True}, False, [], (False, "PrometheusOperatorAPIMissing")),
    ({"serviceMonitor": True}, True, ["ServiceMonitor"], (False, "Pending")),
    ({"serviceMonitor": True}, True, ["ServiceMonitor", "PrometheusRule"], (True, "Created")),
])
def test_monitoring_informs(monitoring, served, children, expected):
    ps = _ps(**({"monitoring": monitoring} if monitoring else {}))
    got = gates.monitoring_condition(ps, api_served=served, children=children)
    assert (None if got is None else (got.open, got.reason)) == expected
