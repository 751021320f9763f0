"""Service, NetworkPolicy, Ingress, HPA and PDB: the choices the golden files only show."""

from __future__ import annotations

from typing import Any

import pytest
from payment_operator.api import PaymentService, parse
from payment_operator.builders import Context, network, scaling

from tests.unit.builders.cases import minimal_body

pytestmark = pytest.mark.unit


def ps(**spec: Any) -> PaymentService:
    return parse(minimal_body(**spec))


def _sources(policy: dict[str, Any], port: int) -> list[dict[str, Any]]:
    [rule] = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == port]
    peers: list[dict[str, Any]] = rule["from"]
    return peers


def _namespaces(peers: list[dict[str, Any]]) -> list[str]:
    return [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in peers
        if "namespaceSelector" in p
    ]


def test_service_maps_the_spec_port_to_the_http_port_and_exposes_metrics() -> None:
    svc = network.service(ps(service={"type": "NodePort", "port": 443}))
    assert svc["spec"]["type"] == "NodePort"
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        (443, "http"),
        (9090, "metrics"),
    ]
    assert "annotations" not in svc["metadata"]


def test_network_policy_admits_own_namespace_listed_ones_and_the_gateway() -> None:
    policy = network.network_policy(
        ps(networkPolicy={"allowedNamespaces": ["payments", "b", "a"]}),
        Context(gateway_namespace="kong"),
    )
    assert policy is not None
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    peers = _sources(policy, 8080)
    assert {"podSelector": {}} in peers
    assert _namespaces(peers) == ["a", "b", "kong"]  # own namespace covered by podSelector
    assert len(policy["spec"]["ingress"]) == 1  # no metrics rule without monitoring


def test_network_policy_lets_prometheus_scrape_when_monitoring_is_set() -> None:
    ctx = Context(monitoring_namespace="observability")
    policy = network.network_policy(ps(monitoring={}), ctx)
    assert policy is not None
    assert _namespaces(_sources(policy, 9090)) == ["observability"]


def test_network_policy_egress_covers_dns_postgres_kafka_stripe() -> None:
    p = ps(
        kafka={"bootstrapServers": "a:9092,b:9093,c:9092"},
        stripe={
            "apiBase": "http://stripe-mock:12111",
            "secretKey": {"secretRef": {"name": "s", "key": "k"}},
        },
    )
    policy = network.network_policy(p, Context())
    assert policy is not None
    dns, tcp = policy["spec"]["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert _namespaces(dns["to"]) == ["kube-system"]
    assert [x["port"] for x in tcp["ports"]] == [443, 5432, 9092, 9093, 12111]


def test_network_policy_egress_reaches_the_jwks_port() -> None:
    auth = {"issuer": "https://idp/realms/pay", "audience": "payments"}
    default = ps(auth={**auth, "jwksUrl": "https://idp/realms/pay/certs"})
    custom = ps(auth={**auth, "jwksUrl": "https://keycloak.idp:8443/realms/pay/certs"})
    for p, ports in ((default, [443, 5432]), (custom, [443, 5432, 8443])):
        policy = network.network_policy(p, Context())
        assert policy is not None
        assert [x["port"] for x in policy["spec"]["egress"][1]["ports"]] == ports


def test_network_policy_can_be_disabled() -> None:
    assert network.network_policy(ps(networkPolicy={"enabled": False}), Context()) is None
    assert network.network_policy(ps(), Context()) is not None


def test_kafka_ports_are_parsed_from_bootstrap_servers() -> None:
    assert network.kafka_ports("b-1.x:9094,b-2.x:9094,y:19092") == [9094, 19092]


def test_ingress_only_when_asked_and_with_its_settings() -> None:
    assert network.ingress(ps()) is None
    ing = network.ingress(
        ps(ingress={"host": "pay.example.com", "annotations": {"konghq.com/plugins": "rl"}})
    )
    assert ing is not None
    assert ing["metadata"]["annotations"] == {"konghq.com/plugins": "rl"}
    assert "ingressClassName" not in ing["spec"]
    assert "tls" not in ing["spec"]
    paths = ing["spec"]["rules"][0]["http"]["paths"]
    # The payment API and the webhooks, not "/": health, OpenAPI and metrics stay inside.
    assert [(p["path"], p["pathType"]) for p in paths] == [
        ("/api", "Prefix"),
        ("/webhooks", "Prefix"),
    ]
    for path in paths:
        assert path["backend"] == {"service": {"name": "pay", "port": {"name": "http"}}}
    chosen = network.ingress(ps(ingress={"host": "pay.example.com", "path": "/api/v1"}))
    assert chosen is not None
    assert [p["path"] for p in chosen["spec"]["rules"][0]["http"]["paths"]] == ["/api/v1"]


def test_autoscaler_scales_the_payment_service_itself() -> None:
    assert scaling.horizontal_pod_autoscaler(ps()) is None
    hpa = scaling.horizontal_pod_autoscaler(ps(autoscaling={"minReplicas": 2, "maxReplicas": 9}))
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "paydeck.dev/v1alpha1",
        "kind": "PaymentService",
        "name": "pay",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 9)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


@pytest.mark.parametrize(
    ("pdb", "expected"),
    [
        (None, {"maxUnavailable": 1}),
        ({"minAvailable": 2}, {"minAvailable": 2}),
        ({"maxUnavailable": 0}, {"maxUnavailable": 0}),
    ],
)
def test_disruption_budget_from_the_spec_or_one_at_a_time(
    pdb: dict[str, int] | None, expected: dict[str, int]
) -> None:
    p = ps(podDisruptionBudget=pdb) if pdb else ps()
    spec = scaling.pod_disruption_budget(p)["spec"]
    assert {k: v for k, v in spec.items() if k in ("minAvailable", "maxUnavailable")} == expected
    assert spec["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "payment-service",
            "app.kubernetes.io/instance": "pay",
        }
    }
