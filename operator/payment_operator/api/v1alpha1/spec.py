"""The desired state of a PaymentService: workload, integrations, network and rollout.

Secrets are never values in the spec: every secret is a :class:`SecretValueRef` that names a
Kubernetes Secret key or an object synced by the secret store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field, model_validator

from payment_operator.api.v1alpha1.base import (
    ApiModel,
    DnsLabel,
    DnsSubdomain,
    Duration,
    EnvName,
    ImageRef,
    Int32,
    Int64,
    Quantity,
    Rule,
    ShortText,
    StringMap,
    Url,
    present,
    unique,
)
from payment_operator.api.v1alpha1.rollout import Rollout

TopicProvisioner = Literal["strimzi", "admin", "none"]
TopicDeletionPolicy = Literal["Retain", "Delete"]
SecretBackend = Literal["external-secrets", "csi"]
SecretProvider = Literal["azure-keyvault", "aws-secrets-manager", "vault"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
RiskFailureMode = Literal["open", "closed"]
VelocityScope = Literal["customer", "paymentMethod", "client"]

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
AWS_REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$"
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
REMOTE_REF_PATTERN = r"^[A-Za-z0-9/_+=.@-]+$"
TOPIC_PATTERN = r"^[A-Za-z0-9._-]+$"
BOOTSTRAP_PATTERN = r"^[A-Za-z0-9.-]+:[0-9]{1,5}(,[A-Za-z0-9.-]+:[0-9]{1,5})*$"
STRIPE_VERSION_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.[a-z]+)?$"
HTTP_PATH_PATTERN = r"^/[A-Za-z0-9/._~%!$&'()*+,;=:@-]*$"
#: What the runtime accepts as its OTLP endpoint: a base URL, no credentials, query or fragment.
OTLP_ENDPOINT_PATTERN = r"^https?://[^/@?#]+(/[^?#]*)?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
#: A key of a Secret's or ConfigMap's data.
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
#: The longest velocity window (a week) and rate-limit window (a day), as the runtime's.
MAX_VELOCITY_WINDOW_SECONDS = 7 * 24 * 3600
MAX_RATE_LIMIT_WINDOW_SECONDS = 24 * 3600


class SecretKeySelector(ApiModel):
    """A key of a Kubernetes Secret in the PaymentService's namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret.")
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=DATA_KEY_PATTERN,
        description="Key within the Secret's data.",
    )


class SecretValueRef(ApiModel):
    """Where a secret value comes from: exactly one of secretRef or storeObject."""

    __rules__ = (
        Rule(
            rule="has(self.secretRef) != has(self.storeObject)",
            message="set exactly one of secretRef or storeObject",
            check=lambda r: present(r.secret_ref, r.store_object) == 1,
        ),
    )

    secret_ref: SecretKeySelector | None = Field(
        default=None, description="Read the value from a key of a Kubernetes Secret."
    )
    store_object: EnvName | None = Field(
        default=None,
        description="Read the value from the secretStore.objects entry of this name.",
    )


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler for the stable workload; it then owns spec.replicas."""

    __rules__ = (
        Rule(
            rule="self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            check=lambda a: a.min_replicas <= a.max_replicas,
            field_path=".minReplicas",
        ),
    )

    min_replicas: Int32 = Field(default=1, ge=1, le=1000, description="Lowest replica count.")
    max_replicas: Int32 = Field(ge=1, le=1000, description="Highest replica count.")
    target_cpu_utilization_percentage: Int32 = Field(
        default=70,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",
        description="Average CPU utilisation (percent of requests) the autoscaler aims for.",
    )
    target_memory_utilization_percentage: Int32 | None = Field(
        default=None,
        ge=1,
        le=100,
        alias="targetMemoryUtilizationPercentage",
        description="Average memory utilisation (percent of requests) the autoscaler aims for.",
    )


class Resources(ApiModel):
    """Compute resources of the payment container."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        max_length=8,
        description="Minimum resources, such as {cpu: 250m, memory: 256Mi}.",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        max_length=8,
        description="Maximum resources, such as {cpu: '1', memory: 512Mi}.",
    )


#: The runtime reads its settings from ``PAYMENT_*`` variables, case-insensitively; the
#: operator sets them from the spec's checked fields, so spec.env may not.
RESERVED_ENV_PREFIX = "PAYMENT_"
#: OpenTelemetry's own SDK settings: spec.tracing configures tracing; one of these could send
#: spans elsewhere or record request headers (Authorization) into them.
OTEL_ENV_PREFIX = "OTEL_"


class EnvVar(ApiModel):
    """A plain (non-secret) environment variable of the payment container.

    ``PAYMENT_*`` names (in any case) are refused: they are the runtime's own settings, and
    one set here would override what the operator derives from the validated spec (the
    webhook tolerance, the JWT leeway, an https-only JWKS URL, the secrets wiring). So are
    ``OTEL_*`` names, OpenTelemetry's SDK settings, which ``spec.tracing`` owns.
    """

    __rules__ = (
        Rule(
            rule=f"!self.name.upperAscii().startsWith('{RESERVED_ENV_PREFIX}')",
            message=(
                f"{RESERVED_ENV_PREFIX}* variables are the runtime's settings, set by the "
                "operator from the spec: spec.env may not set them"
            ),
            check=lambda e: not e.name.upper().startswith(RESERVED_ENV_PREFIX),
            field_path=".name",
        ),
        Rule(
            rule=f"!self.name.upperAscii().startsWith('{OTEL_ENV_PREFIX}')",
            message=(
                f"{OTEL_ENV_PREFIX}* variables configure OpenTelemetry behind spec.tracing's "
                "back (exporters, captured headers): use spec.tracing"
            ),
            check=lambda e: not e.name.upper().startswith(OTEL_ENV_PREFIX),
            field_path=".name",
        ),
    )

    name: EnvName = Field(description="Name of the variable.")
    value: str = Field(default="", max_length=4096, description="Value of the variable.")


class Stripe(ApiModel):
    """Stripe account settings of the runtime."""

    api_version: str | None = Field(
        default=None,
        pattern=STRIPE_VERSION_PATTERN,
        max_length=32,
        description="Stripe API version to pin, such as 2024-06-20 (account default if unset).",
    )
    api_base: Url | None = Field(
        default=None,
        description="Base URL of the Stripe API; set it only to use a mock such as stripe-mock.",
    )
    secret_key: SecretValueRef = Field(description="The Stripe secret API key.")
    webhook_secret: SecretValueRef | None = Field(
        default=None, description="Signing secret of Stripe webhooks; webhooks are off without it."
    )


class Auth(ApiModel):
    """OIDC JWT bearer authentication of the payment API.

    Every payment call must carry a token signed by a key of the JWKS, issued by ``issuer``
    for ``audience``; without this block the runtime refuses payment calls with 503.
    """

    __rules__ = (
        Rule(
            rule="self.jwksUrl.startsWith('https://')",
            message="jwksUrl must be an https:// URL",
            check=lambda a: a.jwks_url.startswith("https://"),
            field_path=".jwksUrl",
        ),
    )

    jwks_url: Url = Field(
        description=(
            "HTTPS URL of the identity provider's JSON Web Key Set (the jwks_uri of its OIDC "
            "discovery document), such as "
            "https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys."
        ),
    )
    issuer: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^\S+$",
        description=(
            "Issuer (iss claim) tokens must carry, exactly as the identity provider writes it, "
            "such as https://login.microsoftonline.com/<tenant>/v2.0."
        ),
    )
    audience: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^\S+$",
        description=(
            "Audience (aud claim) tokens must be issued for, such as api://payments or an "
            "app client ID."
        ),
    )


class Migrations(ApiModel):
    """The schema migration Job run with the new image before any new pod starts."""

    enabled: bool = Field(default=True, description="Run migrations before each rollout.")
    timeout_seconds: int = Field(
        default=600,
        ge=30,
        le=7200,
        description="Seconds the migration Job may run before the rollout is aborted.",
    )
    backoff_limit: int = Field(
        default=0, ge=0, le=10, description="Retries of the migration Job before it fails."
    )


class Database(ApiModel):
    """The PostgreSQL database of the runtime."""

    url: SecretValueRef = Field(description="The connection URL (postgresql://...), a secret.")
    pool_size: int = Field(default=10, ge=1, le=200, description="Connections in each pod's pool.")
    migrations: Migrations = Field(
        default_factory=Migrations, description="Schema migrations run before a rollout."
    )


class Redis(ApiModel):
    """The Redis the risk checks (velocity and rateLimit) count on: one per service (the
    keys carry its namespace and name, so services may share one)."""

    url: SecretValueRef = Field(
        description=(
            "The connection URL (redis://[:password@]host:port/db, or rediss:// for TLS), a "
            "secret: it may carry the password."
        )
    )
    port: Int32 = Field(
        default=6379,
        ge=1,
        le=65535,
        description=(
            "TCP port of the Redis server, which the NetworkPolicy lets the pods reach (the "
            "operator never reads the URL's Secret). It must match the URL's port."
        ),
    )
    failure_mode: RiskFailureMode = Field(
        default="open",
        description=(
            "When Redis is down or slower than timeoutMilliseconds: open (requests go "
            "through unchecked, with a warning and the risk_check_failures_total metric; "
            "readiness ignores Redis) or closed (payments and mutating requests are refused "
            "with 503 risk_checks_unavailable, the idempotency key stays usable for a retry, "
            "and pods are not ready while Redis is away)."
        ),
    )
    timeout_milliseconds: Int32 = Field(
        default=250,
        ge=5,
        le=5000,
        description="Bound of one Redis round trip (connecting included), on every request.",
    )


class VelocityLimit(ApiModel):
    """At most maxAttempts payment attempts and/or maxAmount per currency by one subject of
    the scope within any windowSeconds (a sliding window)."""

    __rules__ = (
        Rule(
            rule="has(self.maxAttempts) || has(self.maxAmount)",
            message="a velocity limit needs maxAttempts or maxAmount",
            check=lambda v: v.max_attempts is not None or v.max_amount is not None,
            reason="FieldValueRequired",
        ),
        Rule(
            rule="!has(self.maxAmount) || self.maxAmount.all(c, c.matches('^[A-Z]{3}$'))",
            message="maxAmount keys must be ISO 4217 currency codes such as EUR",
            check=lambda v: all(
                re.fullmatch(CURRENCY_PATTERN, c) for c in v.max_amount or {}
            ),
            field_path=".maxAmount",
        ),
    )

    scope: VelocityScope = Field(
        description=(
            "Whose attempts are counted: customer (the payment's customer), paymentMethod "
            "(its payment method) or client (the API client, the token's sub claim)."
        )
    )
    window_seconds: Int32 = Field(
        ge=1,
        le=MAX_VELOCITY_WINDOW_SECONDS,
        description="Length of the sliding window in seconds (at most a week).",
    )
    max_attempts: Int32 | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Attempts admitted per window; the next is refused before Stripe.",
    )
    max_amount: dict[str, Annotated[Int64, Field(ge=1, le=10**15)]] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description=(
            "Total amount admitted per window, by the charge's currency, in minor units, "
            "such as {EUR: 500000} (EUR 5000.00); currencies not listed are not limited."
        ),
    )


class Velocity(ApiModel):
    """Velocity checks of POST /api/v1/payments, before Stripe: a payment over a limit is
    refused with 402 velocity_limit_exceeded (stored as its idempotency key's answer)."""

    limits: list[VelocityLimit] = Field(
        min_length=1, max_length=32, description="The limits; every one must admit a payment."
    )


class RateLimit(ApiModel):
    """A quota per API client (the token's sub claim) on the mutating endpoints (create,
    capture, cancel, refund): answers carry RateLimit-Limit, RateLimit-Remaining and
    RateLimit-Reset; a request over it is refused with 429 rate_limited and Retry-After."""

    requests: Int32 = Field(ge=1, le=1_000_000, description="Requests per client per window.")
    window_seconds: Int32 = Field(
        default=60,
        ge=1,
        le=MAX_RATE_LIMIT_WINDOW_SECONDS,
        description=(
            "Length of the window in seconds (at most a day); it starts with a client's "
            "first request."
        ),
    )


class StrimziCluster(ApiModel):
    """The Strimzi Kafka cluster whose topic operator creates the topics."""

    cluster_name: DnsLabel = Field(
        description="Name of the Kafka resource (the strimzi.io/cluster label of KafkaTopics)."
    )
    namespace: DnsLabel | None = Field(
        default=None,
        description=(
            "Namespace watched by the topic operator; the PaymentService's without it. In "
            "another namespace the KafkaTopics (named <namespace>.<name>-<topic>) are owned by "
            "the labels paydeck.dev/owner-namespace, paydeck.dev/paymentservice and "
            "paydeck.dev/owner-uid, not by an owner reference; the operator must watch that "
            "namespace too when it watches only some."
        ),
    )


class Topic(ApiModel):
    """A Kafka topic the service needs."""

    __rules__ = (
        Rule(
            rule="self.partitions >= oldSelf.partitions",
            message="partitions cannot be decreased (Kafka cannot shrink a topic)",
            check=None,
            field_path=".partitions",
        ),
        Rule(
            rule="self.replicas == oldSelf.replicas",
            message="replicas is immutable once the topic exists",
            check=None,
            field_path=".replicas",
        ),
    )

    name: str = Field(
        min_length=1, max_length=249, pattern=TOPIC_PATTERN, description="Topic name."
    )
    partitions: Int32 = Field(
        default=3, ge=1, le=1000, description="Number of partitions, at least 1."
    )
    replicas: Int32 = Field(default=3, ge=1, le=10, description="Replication factor.")
    config: dict[str, ShortText] | None = Field(
        default=None,
        max_length=32,
        description='Topic configuration, such as {"retention.ms": "604800000"}.',
    )


class KafkaTLS(ApiModel):
    """TLS to the brokers: the CA the runtime trusts, and a client certificate for mTLS.

    Each is a key of a Kubernetes Secret in the PaymentService's namespace, mounted read-only
    into the runtime's pods (never the migration Job's) and read by librdkafka.
    """

    __rules__ = (
        Rule(
            rule="has(self.certSecretRef) == has(self.keySecretRef)",
            message="certSecretRef and keySecretRef go together (a client certificate and its key)",
            check=lambda t: (t.cert_secret_ref is None) == (t.key_secret_ref is None),
            field_path=".keySecretRef",
            reason="FieldValueRequired",
        ),
    )

    ca_secret_ref: SecretKeySelector = Field(
        description="PEM CA certificate(s) the brokers' certificates must chain to."
    )
    cert_secret_ref: SecretKeySelector | None = Field(
        default=None, description="PEM client certificate for mutual TLS; with keySecretRef."
    )
    key_secret_ref: SecretKeySelector | None = Field(
        default=None,
        description="Unencrypted PEM private key of the client certificate; with certSecretRef.",
    )


class KafkaSASL(ApiModel):
    """SASL authentication of the runtime's producer; the credentials are secrets."""

    mechanism: SaslMechanism = Field(description="SASL mechanism: PLAIN, SCRAM-SHA-256 or -512.")
    username: SecretValueRef = Field(description="The SASL user name.")
    password: SecretValueRef = Field(description="The SASL password.")


def _is_sasl(protocol: str) -> bool:
    return protocol.startswith("SASL_")


def _is_tls(protocol: str) -> bool:
    return protocol.endswith("SSL")


class KafkaSecurity(ApiModel):
    """How the runtime's outbox relay connects to the brokers: TLS and/or SASL.

    It applies to the runtime's pods only; the operator's own admin client (topicProvisioner
    admin) uses the operator's settings, never these references.
    """

    __rules__ = (
        Rule(
            rule="!self.protocol.startsWith('SASL_') || has(self.sasl)",
            message="protocol SASL_PLAINTEXT or SASL_SSL needs sasl",
            check=lambda s: not _is_sasl(s.protocol) or s.sasl is not None,
            field_path=".sasl",
            reason="FieldValueRequired",
        ),
        Rule(
            rule="!has(self.sasl) || self.protocol.startsWith('SASL_')",
            message="sasl may only be set with protocol SASL_PLAINTEXT or SASL_SSL",
            check=lambda s: s.sasl is None or _is_sasl(s.protocol),
            field_path=".sasl",
            reason="FieldValueForbidden",
        ),
        Rule(
            rule="!self.protocol.endsWith('SSL') || has(self.tls)",
            message="protocol SSL or SASL_SSL needs tls.caSecretRef",
            check=lambda s: not _is_tls(s.protocol) or s.tls is not None,
            field_path=".tls",
            reason="FieldValueRequired",
        ),
        Rule(
            rule="!has(self.tls) || self.protocol.endsWith('SSL')",
            message="tls may only be set with protocol SSL or SASL_SSL",
            check=lambda s: s.tls is None or _is_tls(s.protocol),
            field_path=".tls",
            reason="FieldValueForbidden",
        ),
    )

    protocol: KafkaProtocol = Field(
        default="PLAINTEXT",
        description=(
            "security.protocol of the runtime's producer: PLAINTEXT, SSL, SASL_PLAINTEXT or "
            "SASL_SSL (SSL ones need tls, SASL ones need sasl)."
        ),
    )
    tls: KafkaTLS | None = Field(
        default=None, description="TLS settings; required with protocol SSL or SASL_SSL."
    )
    sasl: KafkaSASL | None = Field(
        default=None, description="SASL settings; required with protocol SASL_PLAINTEXT/SASL_SSL."
    )


class Kafka(ApiModel):
    """The Kafka cluster the runtime publishes payment events to (through its outbox)."""

    __rules__ = (
        Rule(
            rule="self.topicProvisioner != 'strimzi' || has(self.strimzi)",
            message="topicProvisioner strimzi needs strimzi.clusterName",
            check=lambda k: k.topic_provisioner != "strimzi" or k.strimzi is not None,
            field_path=".strimzi",
            reason="FieldValueRequired",
        ),
        Rule(
            rule="!has(self.strimzi) || self.topicProvisioner == 'strimzi'",
            message="strimzi may only be set when topicProvisioner is strimzi",
            check=lambda k: k.strimzi is None or k.topic_provisioner == "strimzi",
            field_path=".strimzi",
            reason="FieldValueForbidden",
        ),
        Rule(
            rule=(
                "self.topicDeletionPolicy != 'Delete' || "
                "self.topicProvisioner in ['admin', 'strimzi']"
            ),
            message="topicDeletionPolicy Delete needs topicProvisioner admin or strimzi",
            check=lambda k: k.topic_deletion_policy != "Delete"
            or k.topic_provisioner in ("admin", "strimzi"),
            field_path=".topicDeletionPolicy",
            reason="FieldValueForbidden",
        ),
        Rule(
            rule=(
                "!has(oldSelf.topics) || oldSelf.topics.all(t, "
                "has(self.topics) && self.topics.exists(n, n.name == t.name))"
            ),
            message="topics cannot be removed or renamed once created",
            check=None,
            field_path=".topics",
            reason="FieldValueForbidden",
        ),
    )

    bootstrap_servers: str = Field(
        pattern=BOOTSTRAP_PATTERN,
        max_length=1024,
        description="Comma-separated host:port list of brokers, such as kafka:9092.",
    )
    topic_provisioner: TopicProvisioner = Field(
        default="none",
        description=(
            "Who creates the topics: strimzi (one KafkaTopic resource per topic, in this "
            "namespace or in strimzi.namespace, whose Ready condition gates a rollout; Strimzi's "
            "topic operator creates the topics); admin (the operator itself, through the "
            "Kafka admin API to bootstrapServers, with the operator's own connection settings "
            "(its deployment's kafkaAdmin chart values, never security below), on every "
            "reconcile: it creates "
            "missing topics with their partitions, replicas and config, raises partitions, "
            "restores the config keys listed here and leaves other keys alone; it never "
            "lowers partitions, never changes the replication factor of an existing topic and "
            "deletes topics only with topicDeletionPolicy Delete; TopicsReady gates a "
            "rollout); or none (they exist already; not checked)."
        ),
    )
    topic_deletion_policy: TopicDeletionPolicy = Field(
        default="Retain",
        description=(
            "What happens to the topics when the PaymentService is deleted. With "
            "topicProvisioner admin: Retain (they stay on the cluster, with their data) or "
            "Delete (the operator deletes every topic listed in topics, including ones it did "
            "not create, before it releases the PaymentService's finalizer). With strimzi and "
            "strimzi.namespace: Retain (the KafkaTopics stay there, keeping their labels, "
            "handed over to that namespace's owners: no PaymentService manages them any more, "
            "and a new one of the same name does not adopt them) or Delete (the operator "
            "deletes its KafkaTopics there before it releases the finalizer; Strimzi then "
            "deletes the topics). With strimzi in this namespace the KafkaTopics are owned by "
            "reference and garbage collected with the PaymentService whatever this says "
            "(Strimzi then deletes the topics)."
        ),
    )
    security: KafkaSecurity | None = Field(
        default=None,
        description="TLS and SASL of the runtime's producer; PLAINTEXT without it.",
    )
    strimzi: StrimziCluster | None = Field(
        default=None, description="The Strimzi cluster; required with topicProvisioner strimzi."
    )
    topics: list[Topic] | None = Field(
        default=None,
        max_length=32,
        description="Topics the service uses; names are immutable once created.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _unique_topics(self) -> Kafka:
        unique((t.name for t in self.topics or ()), "topic name")
        return self


class AzureKeyVault(ApiModel):
    """Azure Key Vault reached with workload identity."""

    vault_name: str = Field(
        min_length=3,
        max_length=24,
        pattern=r"^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$",
        description="Name of the key vault (https://<vaultName>.vault.azure.net).",
    )
    tenant_id: str = Field(pattern=UUID_PATTERN, max_length=36, description="Entra ID tenant.")
    client_id: str = Field(
        pattern=UUID_PATTERN,
        max_length=36,
        description="Client ID of the managed identity federated with the service account.",
    )


class AwsSecretsManager(ApiModel):
    """AWS Secrets Manager reached with IAM roles for service accounts (IRSA)."""

    region: str = Field(pattern=AWS_REGION_PATTERN, max_length=32, description="AWS region.")
    role_arn: str = Field(
        pattern=ROLE_ARN_PATTERN,
        max_length=600,
        description="IAM role assumed through the service account (eks.amazonaws.com/role-arn).",
    )


class VaultStore(ApiModel):
    """HashiCorp Vault reached with its Kubernetes auth method."""

    address: Url = Field(description="Vault address, such as https://vault.example:8200.")
    role: str = Field(
        min_length=1, max_length=128, description="Kubernetes auth role to log in as."
    )
    mount_path: str = Field(
        default="secret",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_/-]+$",
        description="Mount path of the KV v2 secrets engine.",
    )
    auth_path: str = Field(
        default="kubernetes",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_/-]+$",
        description="Mount path of the Kubernetes auth method.",
    )


class StoreObject(ApiModel):
    """A secret synced from the store into the pod, under an environment-variable name."""

    name: EnvName = Field(
        description="Name the value is exposed under (environment variable and Secret key)."
    )
    remote_ref: str = Field(
        min_length=1,
        max_length=512,
        pattern=REMOTE_REF_PATTERN,
        description="Name of the secret in the store.",
    )
    version: str | None = Field(
        default=None, max_length=128, description="Version of the secret; the latest without it."
    )


_PROVIDER_BLOCKS = {"azure-keyvault": "azure", "aws-secrets-manager": "aws", "vault": "vault"}


def _provider_block_check(provider: str, block: str) -> Callable[[SecretStore], bool]:
    """Python mirror of "provider X needs its block"."""

    def check(store: SecretStore) -> bool:
        return store.provider != provider or getattr(store, block) is not None

    return check


class SecretStore(ApiModel):
    """Where secrets come from, and which of them the service needs."""

    __rules__ = (
        *(
            Rule(
                rule=f"self.provider != '{provider}' || has(self.{block})",
                message=f"provider {provider} needs the {block} block",
                check=_provider_block_check(provider, block),
                field_path=f".{block}",
                reason="FieldValueRequired",
            )
            for provider, block in _PROVIDER_BLOCKS.items()
        ),
        Rule(
            rule=(
                "(has(self.azure) ? 1 : 0) + (has(self.aws) ? 1 : 0) + (has(self.vault) ? 1 : 0)"
                " <= 1"
            ),
            message="only the block of the selected provider may be set",
            check=lambda s: present(s.azure, s.aws, s.vault) <= 1,
            field_path=".provider",
            reason="FieldValueForbidden",
        ),
    )

    backend: SecretBackend = Field(
        description=(
            "How secrets reach the pod: external-secrets (ExternalSecret into a Secret) or "
            "csi (Secrets Store CSI driver volume, synced to a Secret)."
        ),
    )
    provider: SecretProvider = Field(description="The secret store holding the secrets.")
    azure: AzureKeyVault | None = Field(
        default=None, description="Azure Key Vault settings; only with provider azure-keyvault."
    )
    aws: AwsSecretsManager | None = Field(
        default=None, description="AWS settings; only with provider aws-secrets-manager."
    )
    vault: VaultStore | None = Field(
        default=None, description="HashiCorp Vault settings; only with provider vault."
    )
    refresh_interval: Duration = Field(
        default="1h", description="How often synced secrets are refreshed, such as 1h."
    )
    objects: list[StoreObject] = Field(
        min_length=1,
        max_length=64,
        description="The secrets to sync.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _unique_objects(self) -> SecretStore:
        unique((o.name for o in self.objects), "store object name")
        return self


class Service(ApiModel):
    """The Kubernetes Service in front of the stable and canary pods."""

    type: ServiceType = Field(default="ClusterIP", description="Service type.")
    port: Int32 = Field(default=80, ge=1, le=65535, description="Port the Service listens on.")
    annotations: StringMap | None = Field(
        default=None, description="Annotations of the Service (load balancer settings)."
    )


class IngressTLS(ApiModel):
    """TLS of the Ingress."""

    secret_name: DnsSubdomain = Field(description="Secret holding the certificate and key.")


class Ingress(ApiModel):
    """An Ingress exposing the service (webhooks from Stripe come in through it)."""

    host: DnsSubdomain = Field(description="Host name, such as payments.example.com.")
    path: str | None = Field(
        default=None,
        max_length=256,
        pattern=HTTP_PATH_PATTERN,
        description=(
            "One path prefix to route instead of the default /api and /webhooks (the payment "
            "API and Stripe's webhooks); by default health, metrics and the OpenAPI document "
            "are not reachable through the Ingress."
        ),
    )
    class_name: str | None = Field(
        default=None,
        max_length=253,
        description="IngressClass to use; the cluster default without it.",
    )
    tls: IngressTLS | None = Field(default=None, description="Serve HTTPS with this certificate.")
    annotations: StringMap | None = Field(default=None, description="Annotations of the Ingress.")


class NetworkPolicy(ApiModel):
    """A NetworkPolicy that admits traffic only from the listed namespaces (and the ingress)."""

    enabled: bool = Field(default=True, description="Create the NetworkPolicy.")
    allowed_namespaces: list[DnsLabel] | None = Field(
        default=None,
        max_length=32,
        description="Namespaces whose pods may call the service, besides its own.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class PodDisruptionBudget(ApiModel):
    """A PodDisruptionBudget for the service's pods: exactly one of the two limits."""

    __rules__ = (
        Rule(
            rule="has(self.minAvailable) != has(self.maxUnavailable)",
            message="set exactly one of minAvailable or maxUnavailable",
            check=lambda p: present(p.min_available, p.max_unavailable) == 1,
        ),
    )

    min_available: Int32 | None = Field(
        default=None, ge=0, le=1000, description="Pods that must stay available."
    )
    max_unavailable: Int32 | None = Field(
        default=None, ge=0, le=1000, description="Pods that may be unavailable at once."
    )


class Monitoring(ApiModel):
    """Prometheus scraping of the runtime's metrics."""

    service_monitor: bool = Field(
        default=False, description="Create a Prometheus Operator ServiceMonitor."
    )
    path: str = Field(
        default="/metrics", max_length=256, pattern=HTTP_PATH_PATTERN, description="Metrics path."
    )
    interval: Duration = Field(default="30s", description="Scrape interval.")
    labels: StringMap | None = Field(
        default=None, description="Labels of the ServiceMonitor (for Prometheus' selector)."
    )
    dashboard: bool = Field(
        default=False,
        description=(
            "Create a Grafana dashboard, ConfigMap <name>-dashboard labelled "
            "grafana_dashboard: \"1\" (the Grafana Helm chart's sidecar default; the sidecar "
            "must search this namespace). Its queries select the namespace and service labels "
            "a scrape through the ServiceMonitor adds."
        ),
    )




class ConfigMapKeySelector(ApiModel):
    """A key of a ConfigMap in the PaymentService's namespace (yours: never written)."""

    name: DnsSubdomain = Field(description="Name of the ConfigMap.")
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=DATA_KEY_PATTERN,
        description="Key within the ConfigMap's data.",
    )


class Currencies(ApiModel):
    """A reporting currency for metrics and limits, converted with your rate table.

    The charged amount is never converted. The rate table is a JSON object of ISO 4217 code
    to the value of one unit of that currency in the reporting currency, such as
    {"USD": "0.92", "JPY": "0.0061"}; the runtime refuses to start on an invalid one.
    """

    __rules__ = (
        Rule(
            rule="has(self.reporting) == has(self.ratesConfigMap)",
            message="reporting and ratesConfigMap go together",
            check=lambda c: (c.reporting is None) == (c.rates_config_map is None),
            field_path=".ratesConfigMap",
            reason="FieldValueRequired",
        ),
    )

    reporting: str | None = Field(
        default=None,
        pattern=CURRENCY_PATTERN,
        max_length=3,
        description="ISO 4217 code of the reporting currency, such as EUR.",
    )
    rates_config_map: ConfigMapKeySelector | None = Field(
        default=None,
        description=(
            "The ConfigMap key holding the rate table, mounted read-only into the pods (a "
            "change reaches them without a rollout, within about a minute); the operator "
            "reads it only to report whether it exists (CurrencyRatesReady gates new pods)."
        ),
    )


class Tracing(ApiModel):
    """OpenTelemetry tracing of the runtime, exported over OTLP/HTTP (protobuf).

    Spans: one per HTTP request, database transaction, Stripe call and outbox publish, named
    ``service.name`` = this PaymentService's name, ``service.version`` = the pod's revision.
    The egress NetworkPolicy opens the endpoint's port.
    """

    __rules__ = (
        Rule(
            rule=f"self.otlpEndpoint.matches('{OTLP_ENDPOINT_PATTERN}')",
            message=(
                "otlpEndpoint must be a base URL such as http://otel-collector:4318, "
                "without credentials, query or fragment"
            ),
            check=lambda t: re.match(OTLP_ENDPOINT_PATTERN, t.otlp_endpoint) is not None,
            field_path=".otlpEndpoint",
        ),
    )

    otlp_endpoint: Url = Field(
        description=(
            "Base URL of an OTLP/HTTP receiver (an OpenTelemetry Collector, say); /v1/traces "
            "is appended, as for OTEL_EXPORTER_OTLP_ENDPOINT. Such as "
            "http://otel-collector.observability:4318."
        ),
    )
    sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description=(
            "Share of new traces recorded, 0 to 1; a caller's sampling decision (the "
            "traceparent flag) is always followed."
        ),
    )


def _store_ref_rule(path: str, python_path: tuple[str, ...]) -> Rule:
    """Rule: a storeObject reference at ``path`` names an object of secretStore.objects."""
    parts = f"{path}.storeObject".split(".")
    guards = " && ".join(f"has(self.{'.'.join(parts[: i + 1])})" for i in range(len(parts)))

    def check(spec: PaymentServiceSpec) -> bool:
        node: object = spec
        for attr in python_path:
            node = getattr(node, attr, None)
            if node is None:
                return True
        store = spec.secret_store
        return store is not None and any(o.name == node for o in store.objects)

    return Rule(
        rule=(
            f"!({guards}) || (has(self.secretStore) && "
            f"self.secretStore.objects.exists(o, o.name == self.{path}.storeObject))"
        ),
        message=f"{path}.storeObject must name an object of secretStore.objects",
        check=check,
        field_path=f".{path}.storeObject",
    )


class PaymentServiceSpec(ApiModel):
    """The desired state of a payment service."""

    __rules__ = (
        _store_ref_rule("stripe.secretKey", ("stripe", "secret_key", "store_object")),
        _store_ref_rule("stripe.webhookSecret", ("stripe", "webhook_secret", "store_object")),
        _store_ref_rule("database.url", ("database", "url", "store_object")),
        _store_ref_rule("redis.url", ("redis", "url", "store_object")),
        Rule(
            rule="!has(self.velocity) || has(self.redis)",
            message="velocity needs redis (the windows are counted there)",
            check=lambda s: s.velocity is None or s.redis is not None,
            field_path=".redis",
            reason="FieldValueRequired",
        ),
        Rule(
            rule="!has(self.rateLimit) || has(self.redis)",
            message="rateLimit needs redis (the quotas are counted there)",
            check=lambda s: s.rate_limit is None or s.redis is not None,
            field_path=".redis",
            reason="FieldValueRequired",
        ),
        Rule(
            rule="!has(self.redis) || has(self.velocity) || has(self.rateLimit)",
            message="redis is used by velocity and rateLimit only: set one of them",
            check=lambda s: s.redis is None or s.velocity is not None or s.rate_limit is not None,
            field_path=".redis",
            reason="FieldValueForbidden",
        ),
        _store_ref_rule(
            "kafka.security.sasl.username",
            ("kafka", "security", "sasl", "username", "store_object"),
        ),
        _store_ref_rule(
            "kafka.security.sasl.password",
            ("kafka", "security", "sasl", "password", "store_object"),
        ),
    )

    image: ImageRef = Field(
        description=(
            "Payment runtime image with a tag or digest, such as "
            "registry.example/payment-runtime:1.4.2. Changing it starts a rollout."
        ),
    )
    replicas: Int32 = Field(
        default=2,
        ge=0,
        le=1000,
        description=(
            "Desired pods of the stable revision (the scale subresource); the autoscaler "
            "owns it when autoscaling is set."
        ),
    )
    autoscaling: Autoscaling | None = Field(
        default=None, description="Scale with a HorizontalPodAutoscaler."
    )
    resources: Resources | None = Field(
        default=None, description="CPU and memory of the payment container."
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=64,
        description="Extra plain environment variables (never secrets: use secretStore).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    stripe: Stripe = Field(description="Stripe account settings.")
    database: Database = Field(description="PostgreSQL database and its migrations.")
    auth: Auth | None = Field(
        default=None,
        description=(
            "OIDC JWT authentication of the payment API; without it the runtime refuses "
            "every payment call with 503 auth_not_configured (health and webhooks still work)."
        ),
    )
    kafka: Kafka | None = Field(
        default=None, description="Kafka for payment events; events stay in the outbox without it."
    )
    secret_store: SecretStore | None = Field(
        default=None,
        description="External secret store (Azure Key Vault, AWS Secrets Manager, Vault).",
    )
    redis: Redis | None = Field(
        default=None,
        description="Redis of the risk checks; required by velocity and rateLimit.",
    )
    velocity: Velocity | None = Field(
        default=None,
        description="Velocity limits on payment attempts, checked before Stripe (needs redis).",
    )
    rate_limit: RateLimit | None = Field(
        default=None,
        description="A rate limit per API client on the mutating endpoints (needs redis).",
    )
    rollout: Rollout = Field(
        default_factory=Rollout, description="How new revisions are rolled out."
    )
    service: Service = Field(default_factory=Service, description="The Service of the pods.")
    ingress: Ingress | None = Field(default=None, description="Expose the service over HTTP(S).")
    network_policy: NetworkPolicy | None = Field(
        default=None, description="Restrict who may call the service."
    )
    pod_disruption_budget: PodDisruptionBudget | None = Field(
        default=None, description="Limit voluntary disruptions of the pods."
    )
    monitoring: Monitoring | None = Field(
        default=None, description="Prometheus scraping and a Grafana dashboard."
    )
    currencies: Currencies | None = Field(
        default=None, description="A reporting currency for metrics (never for charging)."
    )
    tracing: Tracing | None = Field(
        default=None,
        description=(
            "OpenTelemetry tracing over OTLP/HTTP; without it no spans are exported (an "
            "incoming traceparent still reaches log lines and Kafka headers)."
        ),
    )

    @model_validator(mode="after")
    def _unique_env(self) -> PaymentServiceSpec:
        unique((e.name for e in self.env or ()), "env name")
        return self
