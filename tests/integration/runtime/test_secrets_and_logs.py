"""Secret providers against moto's AWS Secrets Manager, and no secret in any log line."""

from __future__ import annotations

import asyncio
import io
import logging

import boto3
import pytest

from payment_runtime import logs
from payment_runtime.adapters import secrets
from payment_runtime.settings import Settings
from tests.integration.runtime.helpers import (
    STRIPE_KEY,
    WEBHOOK_SECRET,
    headers,
    payment_body,
    running_app,
    signed_event,
)

pytestmark = pytest.mark.integration


def test_aws_secrets_manager_provider_against_moto(moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client(
        "secretsmanager", region_name="eu-west-1", endpoint_url=moto_server.endpoint_url
    )
    client.create_secret(Name="paydeck/DATABASE_URL", SecretString="postgresql://u:pw-aws-1@db/x")
    client.create_secret(Name="paydeck/STRIPE_API_KEY", SecretString="sk_test_aws_value_123")
    client.create_secret(Name="paydeck/STRIPE_WEBHOOK_SECRET", SecretString="whsec_aws_value")
    settings = Settings(
        secrets_provider="aws-secrets-manager",
        aws_region="eu-west-1",
        aws_endpoint_url=moto_server.endpoint_url,
        secret_name_database_url="paydeck/DATABASE_URL",
        secret_name_stripe_api_key="paydeck/STRIPE_API_KEY",
        secret_name_stripe_webhook_secret="paydeck/STRIPE_WEBHOOK_SECRET",
    )
    provider = secrets.provider_for(settings)
    loaded = secrets.load_runtime_secrets(settings, provider)
    assert loaded.database_url == "postgresql://u:pw-aws-1@db/x"
    assert loaded.stripe_api_key == "sk_test_aws_value_123"
    assert "pw-aws-1" not in repr(loaded)
    with pytest.raises(secrets.SecretNotFound):
        provider.get("paydeck/missing")
    # Every fetched value is now redacted from log output, wherever it appears.
    assert logs.redact("connect with whsec_aws_value now") == f"connect with {logs.REDACTED} now"


def test_no_secret_value_in_any_log_line(dsn, stripe_mock, signer):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    provider = secrets.RedactingProvider(
        secrets.EnvProvider(
            {
                "PAYMENT_DATABASE_URL": dsn,
                "PAYMENT_STRIPE_API_KEY": STRIPE_KEY,
                "PAYMENT_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            }
        )
    )
    loaded = secrets.load_runtime_secrets(Settings(), provider)
    token = signer.token("payment_admin")
    try:

        async def scenario():
            async with running_app(loaded.database_url, stripe_mock.api_base, signer) as c:
                await c.post("/api/v1/payments", json=payment_body(), headers=headers(token))
                body, sig = signed_event(
                    {
                        "id": "evt_log",
                        "type": "payment_intent.succeeded",
                        "data": {"object": {"id": "pi_x"}},
                    }
                )
                await c.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": sig})
                await c.post(
                    "/webhooks/stripe", content=body, headers={"Stripe-Signature": "t=1,v1=0"}
                )

        asyncio.run(scenario())
        log = logging.getLogger("paydeck.test")
        # Deliberately careless log calls: the formatter must still hide everything.
        log.info("config %s key=%s whsec=%s", dsn, STRIPE_KEY, WEBHOOK_SECRET)
        log.info("auth header", extra={"authorization": f"Bearer {token}", "note": token})
        log.warning("customer jane.doe@example.com paid with 4242 4242 4242 4242")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    output = stream.getvalue()
    lines = output.splitlines()
    assert len(lines) >= 3
    for secret in (
        STRIPE_KEY,
        WEBHOOK_SECRET,
        token,
        dsn,
        "jane.doe@example.com",
        "4242 4242 4242 4242",
    ):
        assert secret not in output, secret
    assert output.count(logs.REDACTED) >= 5
