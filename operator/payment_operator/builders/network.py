"""How traffic reaches the pods and leaves them: Service, NetworkPolicy, Ingress.

The Service selects every pod of the service (stable and canary), so traffic splits by
replica count.  The NetworkPolicy denies everything the runtime does not need: it admits
the http port from its own namespace, the listed namespaces and the ingress gateway (and
the metrics port from Prometheus), and lets out DNS, PostgreSQL, Kafka, Stripe, the JWKS,
Redis (spec.redis.port) and the OTLP trace receiver.
"""

from __future__ import annotations

from typing import Any

from payment_operator.api.v1alpha1 import PaymentService
from payment_operator.builders import meta
from payment_operator.builders.workload import url_port

DNS_NAMESPACE = "kube-system"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
POSTGRES_PORT = 5432
HTTPS_PORT = 443


def service(ps: PaymentService) -> dict[str, Any]:
    """Service ``<name>``: spec.service's port to the http port, plus the metrics port."""
    spec = ps.spec.service
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.object_meta(ps, meta.name(ps), annotations=spec.annotations),
        "spec": {
            "type": spec.type,
            "selector": meta.selector_labels(ps),
            "ports": [
                {
                    "name": meta.HTTP_PORT_NAME,
                    "port": spec.port,
                    "targetPort": meta.HTTP_PORT_NAME,
                    "protocol": "TCP",
                },
                {
                    "name": meta.METRICS_PORT_NAME,
                    "port": meta.METRICS_PORT,
                    "targetPort": meta.METRICS_PORT_NAME,
                    "protocol": "TCP",
                },
            ],
        },
    }


def kafka_ports(bootstrap_servers: str) -> list[int]:
    """The distinct broker ports of a ``host:port,host:port`` list, sorted."""
    return sorted({int(server.rsplit(":", 1)[1]) for server in bootstrap_servers.split(",")})


def egress_tcp_ports(ps: PaymentService) -> list[int]:
    """TCP ports the runtime calls out to: PostgreSQL, Kafka brokers, Stripe, the JWKS,
    Redis, the OTLP receiver of spec.tracing."""
    ports = {POSTGRES_PORT, HTTPS_PORT}
    if ps.spec.kafka is not None:
        ports.update(kafka_ports(ps.spec.kafka.bootstrap_servers))
    if ps.spec.stripe.api_base is not None:
        ports.add(url_port(ps.spec.stripe.api_base))
    if ps.spec.auth is not None:
        ports.add(url_port(ps.spec.auth.jwks_url))
    if ps.spec.tracing is not None:
        ports.add(url_port(ps.spec.tracing.otlp_endpoint))
    if ps.spec.redis is not None:
        ports.add(ps.spec.redis.port)
    return sorted(ports)


def _namespace_peer(ns: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}}


def _tcp(port: int | str) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def network_policy(ps: PaymentService, ctx: meta.Context) -> dict[str, Any] | None:
    """NetworkPolicy ``<name>`` (default deny plus the needed flows), unless disabled.

    Destinations of PostgreSQL, Kafka and Redis are not known (the database and Redis URLs
    are secrets, brokers may be outside the cluster), so egress is limited by port, not by
    peer.
    """
    spec = ps.spec.network_policy
    if spec is not None and not spec.enabled:
        return None
    own = meta.namespace(ps)
    sources = sorted({*(spec.allowed_namespaces or () if spec else ()), ctx.gateway_namespace})
    sources = [ns for ns in sources if ns != own]
    ingress: list[dict[str, Any]] = [
        {
            "from": [{"podSelector": {}}, *(_namespace_peer(ns) for ns in sources)],
            "ports": [_tcp(meta.HTTP_PORT)],
        }
    ]
    if ps.spec.monitoring is not None:
        ingress.append(
            {
                "from": [_namespace_peer(ctx.monitoring_namespace)],
                "ports": [_tcp(meta.METRICS_PORT)],
            }
        )
    egress: list[dict[str, Any]] = [
        {
            "to": [_namespace_peer(DNS_NAMESPACE)],
            "ports": [{"protocol": "UDP", "port": 53}, _tcp(53)],
        },
        {"ports": [_tcp(port) for port in egress_tcp_ports(ps)]},
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta.object_meta(ps, meta.name(ps)),
        "spec": {
            # Every pod of the service: each revision's, and the migration Job's.
            "podSelector": {"matchLabels": {meta.LABEL_PAYMENT_SERVICE: meta.name(ps)}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


#: What an Ingress routes by default: the payment API and Stripe's webhooks, not ``/``
#: (health, readiness and the OpenAPI document stay inside the cluster; ``/metrics`` is
#: on the metrics port, which no Ingress routes to).
INGRESS_PATHS = ("/api", "/webhooks")


def ingress(ps: PaymentService) -> dict[str, Any] | None:
    """Ingress ``<name>`` to the Service's http port, when spec.ingress is set."""
    spec = ps.spec.ingress
    if spec is None:
        return None
    body: dict[str, Any] = {}
    if spec.class_name is not None:
        body["ingressClassName"] = spec.class_name
    def backend() -> dict[str, Any]:
        return {"service": {"name": meta.name(ps), "port": {"name": meta.HTTP_PORT_NAME}}}

    prefixes = INGRESS_PATHS if spec.path is None else (spec.path,)
    body["rules"] = [
        {
            "host": spec.host,
            "http": {
                "paths": [
                    {"path": prefix, "pathType": "Prefix", "backend": backend()}
                    for prefix in prefixes
                ]
            },
        }
    ]
    if spec.tls is not None:
        body["tls"] = [{"hosts": [spec.host], "secretName": spec.tls.secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta.object_meta(ps, meta.name(ps), annotations=spec.annotations),
        "spec": body,
    }
