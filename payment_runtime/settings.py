"""Runtime configuration, read from the environment with the ``PAYMENT_`` prefix.

Secret values (database URL, Stripe keys, Redis URL) are not settings: they come from a secret
provider (see :mod:`payment_runtime.adapters.secrets`), which may be the environment.
The ``secret_name_*`` settings say under which names the provider is asked; with the
``env`` provider a secret named ``X`` is read from ``PAYMENT_X`` (then ``X``).

The operator's builders (``payment_operator.builders.workload``) emit exactly these
settings in the pod's ConfigMap; ``tests/unit/runtime/test_operator_contract.py`` checks
that every ``PAYMENT_*`` name they emit is either a field here or a secret env var named
by a ``secret_name_*`` setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from payment_runtime.domain.velocity import VelocityLimit

#: The Stripe API version this code was written and tested against.
STRIPE_API_VERSION = "2026-02-25.clover"


class Settings(BaseSettings):
    """Everything the runtime can be told, with production-safe defaults."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_", extra="ignore")

    # Secrets: where they come from, and under which names.
    secrets_provider: Literal["env", "files", "azure-keyvault", "aws-secrets-manager"] = "env"
    secrets_dir: str = "/mnt/secrets"
    azure_vault_url: str | None = None
    aws_region: str | None = None
    aws_endpoint_url: str | None = None
    secret_name_database_url: str = "DATABASE_URL"  # noqa: S105
    secret_name_stripe_api_key: str = "STRIPE_API_KEY"  # noqa: S105 - a name, not a value
    secret_name_stripe_webhook_secret: str = "STRIPE_WEBHOOK_SECRET"  # noqa: S105
    secret_name_kafka_sasl_username: str = "KAFKA_SASL_USERNAME"  # noqa: S105
    secret_name_kafka_sasl_password: str = "KAFKA_SASL_PASSWORD"  # noqa: S105
    #: Asked for only when a risk check is on (velocity limits or a rate limit).
    secret_name_redis_url: str = "REDIS_URL"  # noqa: S105

    # Database.
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=10, ge=1)
    db_pool_timeout_seconds: float = 10.0
    idempotency_lock_timeout_seconds: float = 60.0
    #: Retention, purged by a background task of ``serve`` (never on a request): an
    #: Idempotency-Key is honoured for 24 hours, as Stripe's are.
    idempotency_retention_hours: float = Field(default=24, ge=1, le=24 * 366)
    #: Webhook event ids for deduplication. A redelivery after this is still harmless:
    #: an event only moves a payment forward, so applying it again is ``stale``.
    webhook_event_retention_hours: float = Field(default=24, ge=1, le=24 * 366)
    retention_interval_seconds: float = Field(default=300, ge=0.1, le=86_400)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)

    # Stripe.
    stripe_api_version: str = STRIPE_API_VERSION
    stripe_api_base: str | None = None  # e.g. http://localhost:12111 for stripe-mock
    stripe_timeout_seconds: float = 10.0
    stripe_max_network_retries: int = 2
    #: How old a signed webhook may be. 0 would switch the SDK's timestamp check off, so
    #: any event ever signed could be replayed: the range is 1-600 s (Stripe's default 300).
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=600)

    # Kafka outbox relay.
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_topic: str = "payment.events"
    kafka_message_timeout_ms: int = 30_000
    #: security.protocol of the producer. SSL ones use the CA file (and the client
    #: certificate and key, for mTLS); SASL ones need a mechanism, and read the user name and
    #: password through the secret provider (``secret_name_kafka_sasl_*``).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_certificate_location: str | None = None
    kafka_ssl_key_location: str | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    relay_batch_size: int = 200
    relay_poll_interval_seconds: float = 0.5
    relay_in_process: bool = False  # run the relay as a thread inside `serve`

    # Risk checks on Redis (payment_runtime.risk): velocity limits before Stripe, a rate
    # limit per client on the mutating endpoints. Off while both are unset; then no Redis.
    #: A JSON list of limits, such as ``[{"scope": "customer", "window_seconds": 3600,
    #: "max_attempts": 10, "max_amount": {"EUR": 500000}}]`` (scope customer,
    #: payment_method or client; amounts in minor units of the charge's currency).
    velocity_limits: list[VelocityLimit] = Field(default_factory=list, max_length=32)
    #: Mutating requests (create, capture, cancel, refund) per client subject per window.
    rate_limit_requests: int | None = Field(default=None, ge=1, le=1_000_000)
    rate_limit_window_seconds: int = Field(default=60, ge=1, le=86_400)
    #: Redis down or slow: ``open`` lets requests through (a warning, a metric), ``closed``
    #: refuses them with 503 risk_checks_unavailable and makes readiness depend on Redis.
    risk_failure_mode: Literal["open", "closed"] = "open"
    #: The bound of one Redis round trip (connecting included): short, it is on every request.
    redis_timeout_seconds: float = Field(default=0.25, ge=0.005, le=5)
    redis_pool_max: int = Field(default=64, ge=1, le=10_000)
    #: Prefix of every key, so services can share a Redis without sharing counters.
    redis_key_prefix: str = Field(default="paydeck:", max_length=200, pattern=r"^[!-~]*$")

    # Auth (OIDC JWT bearer tokens).
    jwks_url: str | None = None  # https://issuer/.well-known/jwks.json or file:///path
    jwt_issuer: str = "https://auth.paydeck.invalid/"
    jwt_audience: str = "payment-runtime"
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwt_roles_claim: str = "roles"
    #: How long a fetched JWKS is used: a key the identity provider retires stops
    #: verifying within this time (an unknown kid refetches sooner, at most every 30 s).
    jwks_cache_seconds: float = Field(default=300, ge=1, le=3600)
    #: Clock skew allowed on exp/nbf/iat, at most two minutes.
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=120)

    # HTTP.
    host: str = "0.0.0.0"  # noqa: S104 - the container listens on all interfaces
    port: int = Field(default=8080, ge=1, le=65535)
    #: A second listener serving only ``/metrics`` (the pod's ``metrics`` port). With it,
    #: :attr:`port` answers 404 for ``/metrics``; without it (local runs), ``/metrics`` is
    #: served on :attr:`port`.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: The pod's revision (the operator sets it from the pod's ``paydeck.dev/revision`` label
    #: through the downward API). Every series on ``/metrics`` carries it as the ``revision``
    #: label, so canary analysis can split any metric by revision; unset, no label is added.
    revision: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,63}$")
    #: How often a background task reads the outbox gauges; scrapes never query the database.
    outbox_stats_interval_seconds: float = Field(default=15.0, ge=0.1, le=3600)
    #: Reporting currency (metrics, limits) and its rate table, a JSON file (the ConfigMap key
    #: the operator mounts); both or neither. See :mod:`payment_runtime.domain.fx`.
    reporting_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    fx_rates_file: str | None = None
    #: How often a background task checks the rate file for a new version (a ConfigMap update).
    fx_rates_reload_seconds: float = Field(default=30.0, ge=0.1, le=3600)
    # Tracing (OpenTelemetry, :mod:`payment_runtime.tracing`).
    #: Base URL of an OTLP/HTTP receiver (``/v1/traces`` is appended), such as
    #: ``http://otel-collector.observability:4318``. Unset: no spans are recorded or
    #: exported (an incoming ``traceparent`` still reaches the log lines and Kafka headers).
    tracing_otlp_endpoint: str | None = Field(
        default=None, pattern=r"^https?://[^\s/@?#]+(/[^\s?#]*)?$", max_length=2048
    )
    #: Share of new traces recorded (parent-based: a caller's sampled flag is followed).
    tracing_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    #: ``service.name`` of the spans (the operator sets the PaymentService's name);
    #: ``service.version`` is :attr:`revision`.
    tracing_service_name: str = Field(default="payment-runtime", min_length=1, max_length=253)
    max_body_bytes: int = 64 * 1024
    graceful_shutdown_seconds: int = 25
    log_level: str = "INFO"

    @property
    def risk_checks_enabled(self) -> bool:
        """Whether any risk check is on (and Redis is needed)."""
        return bool(self.velocity_limits) or self.rate_limit_requests is not None

    @model_validator(mode="after")
    def _kafka_security(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and self.kafka_sasl_mechanism is None:
            raise ValueError("kafka_security_protocol SASL_* needs kafka_sasl_mechanism")
        if not sasl and self.kafka_sasl_mechanism is not None:
            raise ValueError("kafka_sasl_mechanism needs a SASL_* kafka_security_protocol")
        if (self.kafka_ssl_certificate_location is None) != (self.kafka_ssl_key_location is None):
            raise ValueError(
                "kafka_ssl_certificate_location and kafka_ssl_key_location go together"
            )
        return self

    @model_validator(mode="after")
    def _reporting(self) -> Settings:
        if (self.reporting_currency is None) != (self.fx_rates_file is None):
            raise ValueError("reporting_currency and fx_rates_file go together")
        return self
