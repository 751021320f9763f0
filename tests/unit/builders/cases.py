"""Inputs of the builder tests: the shipped samples plus a few made-up services.

Every case is a PaymentService (with the namespace and uid the API server would add) and
the Context it is built in.  Golden files live under ``golden/<case>/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from payment_operator.api import PaymentService, parse
from payment_operator.api.v1alpha1 import EnvVar
from payment_operator.builders import Capabilities, Context

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "manifests" / "samples"
NAMESPACE = "payments"
UID = "6f1c2b3a-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
ALL_CAPABILITIES = Capabilities(
    prometheus_operator=True, external_secrets=True, secrets_store_csi=True, strimzi=True
)


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    ctx: Context

    @property
    def ps(self) -> PaymentService:
        return parse(self.body)


def with_identity(body: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """A copy of a body with the metadata the API server fills in."""
    metadata = {"namespace": NAMESPACE, "uid": UID, "generation": 1, **body["metadata"], **meta}
    return {**body, "metadata": metadata}


def with_stored_env(ps: PaymentService, env: dict[str, str]) -> PaymentService:
    """``ps`` with a spec.env the model's rules would refuse, as an object stored before a
    rule existed keeps it (CRD validation ratcheting): what the builders must still filter.
    """
    stored = [EnvVar.model_construct(name=k, value=v) for k, v in env.items()]
    return ps.model_copy(update={"spec": ps.spec.model_copy(update={"env": stored})})


def sample(name: str) -> dict[str, Any]:
    body = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())
    return with_identity(body)


def minimal_body(**spec: Any) -> dict[str, Any]:
    """The smallest valid body, with ``spec`` merged in."""
    return with_identity(
        {
            "apiVersion": "paydeck.dev/v1alpha1",
            "kind": "PaymentService",
            "metadata": {"name": "pay"},
            "spec": {
                "image": "ghcr.io/paydeck/payment-runtime:1.0.0",
                "stripe": {"secretKey": {"secretRef": {"name": "stripe", "key": "key"}}},
                "database": {"url": {"secretRef": {"name": "db", "key": "url"}}},
                **spec,
            },
        }
    )


VAULT_BODY = minimal_body(
    replicas=1,
    env=[{"name": "FEATURE_X", "value": ""}, {"name": "LOG_LEVEL", "value": "debug"}],
    stripe={
        "apiBase": "http://stripe-mock.test:12111",
        "secretKey": {"storeObject": "STRIPE_SECRET_KEY"},
    },
    database={"url": {"storeObject": "DATABASE_URL"}, "poolSize": 1},
    kafka={
        "bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-ext:19092",
        "topicProvisioner": "strimzi",
        "strimzi": {"clusterName": "local"},
        "topics": [{"name": "payment.events"}, {"name": "Payment_DLQ", "partitions": 1}],
        "security": {
            "protocol": "SASL_PLAINTEXT",
            "sasl": {
                "mechanism": "SCRAM-SHA-256",
                "username": {"secretRef": {"name": "kafka-login", "key": "user"}},
                "password": {"secretRef": {"name": "kafka-login", "key": "password"}},
            },
        },
    },
    secretStore={
        "backend": "external-secrets",
        "provider": "vault",
        "vault": {"address": "https://vault.example:8200", "role": "payments"},
        "objects": [
            {"name": "DATABASE_URL", "remoteRef": "payments/db"},
            {"name": "STRIPE_SECRET_KEY", "remoteRef": "payments/stripe", "version": "3"},
        ],
    },
    autoscaling={"maxReplicas": 4, "targetMemoryUtilizationPercentage": 80},
    networkPolicy={"enabled": False},
    podDisruptionBudget={"maxUnavailable": 0},
)

VAULT_CSI_BODY = minimal_body(
    secretStore={
        "backend": "csi",
        "provider": "vault",
        "vault": {"address": "https://vault.example:8200", "role": "payments"},
        "objects": [
            {"name": "DATABASE_URL", "remoteRef": "payments/db"},
            {"name": "REDIS_URL", "remoteRef": "payments/redis"},
        ],
    },
    database={"url": {"storeObject": "DATABASE_URL"}},
    redis={"url": {"storeObject": "REDIS_URL"}, "port": 6380, "failureMode": "closed"},
    velocity={
        "limits": [
            {"scope": "customer", "windowSeconds": 3600, "maxAttempts": 10},
            {
                "scope": "paymentMethod",
                "windowSeconds": 86400,
                "maxAmount": {"USD": 1000000, "EUR": 500000},
            },
        ]
    },
    rateLimit={"requests": 600},
    kafka={
        "bootstrapServers": "kafka:9093",
        "security": {
            "protocol": "SSL",
            "tls": {
                "caSecretRef": {"name": "kafka-ca", "key": "ca.pem"},
                "certSecretRef": {"name": "kafka-client", "key": "tls.crt"},
                "keySecretRef": {"name": "kafka-client", "key": "tls.key"},
            },
        },
    },
    monitoring={"serviceMonitor": True},
    networkPolicy={"allowedNamespaces": ["payments", "checkout"]},
)

#: Every secret-store provider, with either backend (see :func:`store_body`).
PROVIDERS = ["azure-keyvault", "aws-secrets-manager", "vault"]
BACKENDS = ["external-secrets", "csi"]


def store_body(provider: str, backend: str) -> dict[str, Any]:
    """A body whose Stripe key and database URL come from a store of that provider."""
    blocks = {
        "azure-keyvault": {
            "azure": {
                "vaultName": "kv-pay",
                "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "clientId": "0e3f1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
            }
        },
        "aws-secrets-manager": {
            "aws": {"region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/r"}
        },
        "vault": {"vault": {"address": "https://vault:8200", "role": "pay"}},
    }
    return minimal_body(
        secretStore={
            "backend": backend,
            "provider": provider,
            **blocks[provider],
            "objects": [
                {"name": "DATABASE_URL", "remoteRef": "db-url"},
                {"name": "STRIPE_KEY", "remoteRef": "stripe", "version": "7"},
            ],
        },
        database={"url": {"storeObject": "DATABASE_URL"}},
        stripe={"secretKey": {"storeObject": "STRIPE_KEY"}},
    )


CASES = [
    Case("minimal", sample("minimal"), Context()),
    Case("full-azure", sample("full"), Context(capabilities=ALL_CAPABILITIES)),
    Case("full-azure-bare-cluster", sample("full"), Context()),
    Case("aws-csi", sample("aws"), Context(capabilities=ALL_CAPABILITIES)),
    Case("vault-eso-strimzi", VAULT_BODY, Context(capabilities=ALL_CAPABILITIES)),
    Case(
        "vault-csi",
        VAULT_CSI_BODY,
        Context(capabilities=ALL_CAPABILITIES, gateway_namespace="kong"),
    ),
]
CASE_IDS = [c.name for c in CASES]
