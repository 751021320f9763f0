"""The operator's own NetworkPolicy and bind addresses, as the chart renders them and the API
server accepts them.

``helm template`` (the cached helm) renders the policy: it selects exactly the operator's pods;
ingress reaches only the liveness and metrics ports (from the configured peers); every egress
rule is limited to ports (API server, DNS, Kafka brokers only when enabled); and the bundle's
copy is the chart's default. The rendered objects then pass a server-side dry run with strict
field validation. That the process binds the configured address is tests/e2e/test_bind_address.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.fixtures.cluster import KubeCluster
from tests.unit.packaging import bundle as b

pytestmark = pytest.mark.integration

EVERY = "0.0.0.0"  # noqa: S104  (the default bind address)

FULL = {
    "ports": {"liveness": 18080, "metrics": 19090},
    "bindAddress": {"liveness": EVERY, "metrics": "127.0.0.1"},
    "networkPolicy": {
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}],
        "apiServer": {"cidrs": ["10.0.0.1/32", "192.0.2.0/28"], "ports": [6443]},
        "kafka": {"enabled": True, "cidrs": ["10.20.0.0/16"], "ports": [9092, 9093]},
        "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.30.0.5/32"}}],
                         "ports": [{"port": 9090, "protocol": "TCP"}]}],
    },
}


def policy(values: dict[str, Any] | None = None) -> dict[str, Any]:
    return b.one(b.rendered(values), "NetworkPolicy")


def ports(rule: dict[str, Any]) -> list[tuple[int, str]]:
    return [(p["port"], p["protocol"]) for p in rule["ports"]]


def test_default_policy_selects_the_operator_pods_and_opens_only_what_it_needs() -> None:
    docs = b.rendered()
    np = b.one(docs, "NetworkPolicy")
    pod_labels = b.one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert np["metadata"]["namespace"] == b.NAMESPACE
    assert np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = np["spec"]["ingress"]
    assert ports(ingress) == [(8080, "TCP"), (9090, "TCP")]
    assert "from" not in ingress
    api, dns = np["spec"]["egress"]
    assert ports(api) == [(443, "TCP"), (6443, "TCP")] and "to" not in api
    assert ports(dns) == [(53, "UDP"), (53, "TCP")]
    assert dns["to"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]


def test_configured_policy_follows_ports_peers_cidrs_and_kafka() -> None:
    np = policy(FULL)
    [ingress] = np["spec"]["ingress"]
    assert ports(ingress) == [(18080, "TCP"), (19090, "TCP")]
    assert ingress["from"] == FULL["networkPolicy"]["ingressFrom"]
    api, dns, kafka, extra = np["spec"]["egress"]
    assert ports(api) == [(6443, "TCP")]
    assert api["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}},
                         {"ipBlock": {"cidr": "192.0.2.0/28"}}]
    assert ports(dns) == [(53, "UDP"), (53, "TCP")]
    assert ports(kafka) == [(9092, "TCP"), (9093, "TCP")]
    assert kafka["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    assert extra == FULL["networkPolicy"]["extraEgress"][0]


def test_every_egress_rule_is_limited_to_ports() -> None:
    for values in (None, FULL):
        for rule in policy(values)["spec"]["egress"]:
            assert rule.get("ports"), rule


def test_policy_can_be_turned_off() -> None:
    docs = b.rendered({"networkPolicy": {"enabled": False}})
    assert not [d for d in docs if d["kind"] == "NetworkPolicy"]


def test_bind_addresses_reach_the_operator_settings() -> None:
    default = b.one(b.rendered(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in default["env"]}
    assert env["PAYDECK_METRICS_BIND_ADDRESS"] == env["PAYDECK_LIVENESS_BIND_ADDRESS"] == EVERY
    container = b.one(b.rendered(FULL), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PAYDECK_METRICS_BIND_ADDRESS"] == "127.0.0.1"
    assert env["PAYDECK_LIVENESS_BIND_ADDRESS"] == EVERY


@pytest.mark.parametrize("bad", [
    {"bindAddress": {"liveness": EVERY, "metrics": "localhost"}},
    {"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"], "ports": [443]}}},
    {"networkPolicy": {"kafka": {"enabled": True, "cidrs": [], "ports": []}}},
])
def test_chart_refuses_bad_values(bad: dict[str, Any]) -> None:
    assert b.render(bad, check=False).returncode != 0


def test_bundle_policy_is_the_chart_default() -> None:
    def bare(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "labels"}}

    chart = b.one(b.rendered({"fullnameOverride": "paydeck-operator"}), "NetworkPolicy")
    bundle = b.one(b.bundle(), "NetworkPolicy")
    selector = {"matchLabels": {"app.kubernetes.io/name": "payment-operator",
                                "app.kubernetes.io/component": "operator"}}
    assert bare(bundle) == bare({**chart, "spec": {**chart["spec"], "podSelector": selector}})


@pytest.mark.parametrize("values", [None, FULL], ids=["default", "configured"])
def test_api_server_accepts_the_policy(cluster: KubeCluster, namespace: str,
                                      values: dict | None) -> None:
    np = policy(values)
    np["metadata"]["namespace"] = namespace
    result = cluster.kubectl("create", "--dry-run=server", "--validate=strict", "-f", "-",
                             input=yaml.safe_dump(np), check=False)
    assert result.returncode == 0, result.stderr
    # Control: strict validation really refuses what the API does not know.
    broken = {**np, "spec": {**np["spec"], "egres": np["spec"]["egress"]}}
    result = cluster.kubectl("create", "--dry-run=server", "--validate=strict", "-f", "-",
                             input=yaml.safe_dump(broken), check=False)
    assert result.returncode != 0 and "egres" in result.stderr
