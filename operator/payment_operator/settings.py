"""Operator settings from the environment (PAYDECK_*), with production defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, IPvAnyAddress, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """How the operator runs: scope, timing, limits, endpoints."""

    model_config = SettingsConfigDict(env_prefix="PAYDECK_")

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; every namespace when empty."
    )
    resync_seconds: float = Field(default=60.0, gt=0, description="Drift-check timer interval.")
    drift_fresh_seconds: float = Field(
        default=600.0, gt=0,
        description="How often an object's drift check reads its children from the API server "
        "instead of the watches' cache (what a watch missed is seen within this).",
    )
    worker_limit: int = Field(default=20, ge=1, description="Concurrent object workers in Kopf.")
    #: Passes in flight at once (each holds a thread and an API connection while it waits on
    #: the API server). 32, not 8: with 200 canaries at once, 8 left passes queueing for a
    #: thread (step latency p95 19.8 s against 1.5 s with 32, bench.rollouts_compare).
    thread_workers: int = Field(default=32, ge=1, description="Threads for synchronous API calls.")
    metrics_port: int = Field(default=9090, description="Port of the Prometheus /metrics endpoint.")
    liveness_port: int = Field(default=8080, description="Port of the /healthz endpoint.")
    metrics_bind_address: IPvAnyAddress = Field(
        # every address, as before this setting existed (the pod IP must be reachable)
        default="0.0.0.0",  # type: ignore[assignment]  # noqa: S104
        description="Address the /metrics endpoint listens on (every IPv4 address by default).",
    )
    liveness_bind_address: IPvAnyAddress = Field(
        default="0.0.0.0",  # type: ignore[assignment]  # noqa: S104
        description=(
            "Address the /healthz endpoint listens on; the kubelet probes the pod IP, so in a"
            " pod it must include that."
        ),
    )
    discovery_ttl_seconds: float = Field(
        default=300.0, gt=0, description="How long answers about optional APIs are cached."
    )
    gateway_namespace: str = Field(
        default="ingress", description="Namespace of the ingress gateway the NetworkPolicy admits."
    )
    standalone: bool = Field(
        default=False, description="Skip peering (only for a single replica or local runs)."
    )
    peering_name: str = Field(default="paydeck", description="Kopf peering object name.")
    api_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Read timeout of the operator's own API calls."
    )
    request_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Timeout of Kopf's API requests (patches, Events)."
    )
    watch_server_timeout_seconds: int = Field(
        default=300, gt=0, description="How long the API server keeps a watch open."
    )
    watch_client_timeout_seconds: float = Field(
        default=330.0, gt=0, description="When a silent watch is given up and opened again."
    )
    kafka_admin_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120,
        description="Timeout of each Kafka admin API call (topicProvisioner admin).",
    )
    kafka_admin_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        Field(default="PLAINTEXT", description="security.protocol of the Kafka admin client.")
    )
    kafka_admin_ssl_ca_location: str | None = Field(
        default=None, description="PEM CA file the brokers' certificates must chain to (SSL)."
    )
    kafka_admin_ssl_certificate_location: str | None = Field(
        default=None, description="PEM client certificate file for mutual TLS."
    )
    kafka_admin_ssl_key_location: str | None = Field(
        default=None, description="PEM private key file of the client certificate."
    )
    kafka_admin_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism with a SASL_* protocol."
    )
    kafka_admin_sasl_username_file: str | None = Field(
        default=None, description="File holding the SASL user name (a mounted Secret key)."
    )
    kafka_admin_sasl_password_file: str | None = Field(
        default=None, description="File holding the SASL password (a mounted Secret key)."
    )
    priority: int | None = Field(
        default=None, description="Peering priority; a random one when unset."
    )
    platform_policy: str = Field(
        default="",
        description=(
            "Name of the PaymentServicePolicy each pass checks the spec against before it"
            " applies anything; no check when empty."
        ),
    )

    @model_validator(mode="after")
    def _kafka_admin_security(self) -> Settings:
        sasl = self.kafka_admin_security_protocol.startswith("SASL_")
        files = (self.kafka_admin_sasl_username_file, self.kafka_admin_sasl_password_file)
        if sasl and (self.kafka_admin_sasl_mechanism is None or None in files):
            raise ValueError(
                "kafka_admin_security_protocol SASL_* needs kafka_admin_sasl_mechanism and "
                "both kafka_admin_sasl_*_file settings"
            )
        if not sasl and (self.kafka_admin_sasl_mechanism is not None or files != (None, None)):
            raise ValueError("kafka_admin_sasl_* settings need a SASL_* protocol")
        tls = (self.kafka_admin_ssl_certificate_location, self.kafka_admin_ssl_key_location)
        if (tls[0] is None) != (tls[1] is None):
            raise ValueError(
                "kafka_admin_ssl_certificate_location and kafka_admin_ssl_key_location go together"
            )
        return self
