"""Secret providers: one interface over env vars, mounted files, Azure Key Vault and AWS.

Every value a provider returns is registered with the log redactor before it is handed
out, so it can never appear in a log line afterwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from payment_runtime import logs
from payment_runtime.settings import Settings


class SecretNotFound(KeyError):
    """The provider has no secret by that name."""


class SecretProvider(Protocol):
    """Something that returns a secret's value by name."""

    def get(self, name: str) -> str:
        """The secret's current value; raises :class:`SecretNotFound`."""
        ...


class EnvProvider:
    """Secrets from environment variables (``PAYMENT_<NAME>`` first, then ``<NAME>``)."""

    def __init__(self, environ: dict[str, str] | None = None, prefix: str = "PAYMENT_") -> None:
        self._environ = os.environ if environ is None else environ
        self._prefix = prefix

    def get(self, name: str) -> str:
        for candidate in (self._prefix + name, name):
            value = self._environ.get(candidate)
            if value:
                return value
        raise SecretNotFound(name)


class FileProvider:
    """Secrets as files in a directory: the Secrets Store CSI driver's mount."""

    def __init__(self, directory: str | Path) -> None:
        self._dir = Path(directory)

    def get(self, name: str) -> str:
        if "/" in name or name in ("", ".", ".."):
            raise SecretNotFound(name)
        path = self._dir / name
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise SecretNotFound(name) from None


class AwsSecretsManagerProvider:
    """Secrets from AWS Secrets Manager via boto3 (IRSA credentials in a pod)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsSecretsManagerProvider:
        import boto3

        client = boto3.client(
            "secretsmanager",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )
        return cls(client)

    def get(self, name: str) -> str:
        try:
            response = self._client.get_secret_value(SecretId=name)
        except self._client.exceptions.ResourceNotFoundException:
            raise SecretNotFound(name) from None
        value = response.get("SecretString")
        if value is None:
            raise SecretNotFound(name)
        return str(value)


def azure_secret_name(name: str) -> str:
    """Key Vault names allow only letters, digits and dashes: ``DATABASE_URL`` ->
    ``database-url``."""
    return name.replace("_", "-").lower()


class AzureKeyVaultProvider:
    """Secrets from Azure Key Vault (``DefaultAzureCredential``: workload identity)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureKeyVaultProvider:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        if not settings.azure_vault_url:
            raise ValueError("PAYMENT_AZURE_VAULT_URL is required for the azure-keyvault provider")
        return cls(SecretClient(settings.azure_vault_url, DefaultAzureCredential()))

    def get(self, name: str) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            secret = self._client.get_secret(azure_secret_name(name))
        except ResourceNotFoundError:
            raise SecretNotFound(name) from None
        if secret.value is None:
            raise SecretNotFound(name)
        return str(secret.value)


class RedactingProvider:
    """Wraps a provider so that every value it returns is redacted from logs."""

    def __init__(self, inner: SecretProvider) -> None:
        self._inner = inner

    def get(self, name: str) -> str:
        value = self._inner.get(name)
        logs.register_secret(value)
        return value


def provider_for(settings: Settings) -> SecretProvider:
    """The provider ``settings.secrets_provider`` names, wrapped for redaction."""
    inner: SecretProvider
    if settings.secrets_provider == "env":
        inner = EnvProvider()
    elif settings.secrets_provider == "files":
        inner = FileProvider(settings.secrets_dir)
    elif settings.secrets_provider == "aws-secrets-manager":
        inner = AwsSecretsManagerProvider.from_settings(settings)
    else:
        inner = AzureKeyVaultProvider.from_settings(settings)
    return RedactingProvider(inner)


@dataclass(frozen=True, slots=True)
class RuntimeSecrets:
    """The secret values the runtime needs."""

    database_url: str
    stripe_api_key: str
    #: None when no webhook secret is configured: webhooks are then disabled.
    stripe_webhook_secret: str | None
    #: The risk checks' Redis (``redis://`` or ``rediss://``, may carry a password); None
    #: when no risk check is on.
    redis_url: str | None = None

    def __repr__(self) -> str:
        return "RuntimeSecrets(<redacted>)"


def load_runtime_secrets(settings: Settings, provider: SecretProvider) -> RuntimeSecrets:
    """Fetch the database URL and Stripe keys through ``provider``.

    The database URL and the Stripe secret key are required (:class:`SecretNotFound`).
    The webhook secret is optional, as it is in the PaymentService API: when the provider
    has none, ``stripe_webhook_secret`` is None and the webhook endpoint is disabled.
    The Redis URL is asked for (and required) only when a risk check is on.
    """
    try:
        webhook_secret: str | None = provider.get(settings.secret_name_stripe_webhook_secret)
    except SecretNotFound:
        webhook_secret = None
    return RuntimeSecrets(
        database_url=provider.get(settings.secret_name_database_url),
        stripe_api_key=provider.get(settings.secret_name_stripe_api_key),
        stripe_webhook_secret=webhook_secret,
        redis_url=(
            provider.get(settings.secret_name_redis_url) if settings.risk_checks_enabled else None
        ),
    )


@dataclass(frozen=True, slots=True)
class KafkaSasl:
    """The SASL user name and password of the outbox relay's producer."""

    username: str
    password: str

    def __repr__(self) -> str:
        return "KafkaSasl(<redacted>)"


def load_kafka_sasl(settings: Settings, provider: SecretProvider) -> KafkaSasl | None:
    """The SASL credentials when the producer's protocol is SASL_*, else None (nothing is
    asked of the provider); both are required then (:class:`SecretNotFound`)."""
    if not settings.kafka_security_protocol.startswith("SASL_"):
        return None
    return KafkaSasl(
        username=provider.get(settings.secret_name_kafka_sasl_username),
        password=provider.get(settings.secret_name_kafka_sasl_password),
    )


def load_database_url(settings: Settings, provider: SecretProvider) -> str:
    """Only the database URL (``migrate`` and ``relay`` need nothing else)."""
    return provider.get(settings.secret_name_database_url)
