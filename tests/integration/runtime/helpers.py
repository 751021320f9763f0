"""Shared test helpers for the runtime: JWT signing, a counting Stripe gateway, the app."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import stripe
from cryptography.hazmat.primitives.asymmetric import rsa

from payment_runtime.adapters.secrets import RuntimeSecrets
from payment_runtime.adapters.stripe_gateway import IntentResult, PaymentGateway, RefundResult
from payment_runtime.api.app import create_app
from payment_runtime.api.auth import KeySource
from payment_runtime.metrics import Metrics
from payment_runtime.settings import Settings

ISSUER = "https://issuer.test/"
AUDIENCE = "payment-runtime"
STRIPE_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dcSECRET"
WEBHOOK_SECRET = "whsec_paydeck_test_webhook_secret_value"


class Signer:
    """An RSA key pair published as a JWKS, minting tokens for tests."""

    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        self.jwks = {"keys": [jwk]}

    def token(self, *roles: str, sub: str = "client-1", **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + 600,
            "roles": list(roles),
        }
        claims.update(overrides)
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


class Crash(Exception):
    """Raised by :class:`CountingGateway` to simulate the process dying after Stripe."""


class CountingGateway:
    """Wraps the real Stripe gateway: counts calls and their idempotency keys, and can
    raise *after* a real Stripe call returned (the crash-before-commit scenario)."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self.crash_after_next: set[str] = set()

    def _after(self, operation: str, key: str) -> None:
        self.calls.append((operation, key))
        if operation in self.crash_after_next:
            self.crash_after_next.discard(operation)
            raise Crash(operation)

    async def create_intent(self, **kwargs: Any) -> IntentResult:
        result = await self.inner.create_intent(**kwargs)
        self._after("create_intent", kwargs["idempotency_key"])
        return result

    async def capture(self, intent_id: str, *, idempotency_key: str) -> IntentResult:
        result = await self.inner.capture(intent_id, idempotency_key=idempotency_key)
        self._after("capture", idempotency_key)
        return result

    async def cancel(self, intent_id: str, *, idempotency_key: str) -> IntentResult:
        result = await self.inner.cancel(intent_id, idempotency_key=idempotency_key)
        self._after("cancel", idempotency_key)
        return result

    async def refund(self, intent_id: str, **kwargs: Any) -> RefundResult:
        result = await self.inner.refund(intent_id, **kwargs)
        self._after("refund", kwargs["idempotency_key"])
        return result

    async def close(self) -> None:
        await self.inner.close()

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)


def settings_for(api_base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "stripe_api_base": api_base,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "db_pool_min": 1,
        "db_pool_max": 8,
        "stripe_max_network_retries": 0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_app(
    dsn: str,
    api_base: str,
    signer: Signer,
    *,
    gateway: Callable[[PaymentGateway], PaymentGateway] | None = None,
    metrics: Metrics | None = None,
    redis_url: str | None = None,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings_for(api_base, **overrides),
        RuntimeSecrets(dsn, STRIPE_KEY, WEBHOOK_SECRET, redis_url),
        key_source=KeySource(jwks=signer.jwks),
        wrap_gateway=gateway,
        metrics=metrics,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
            yield client


def payment_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": 1250,
        "currency": "EUR",
        "customer": "cust_42",
        "payment_method": "pm_card_visa",
    }
    body.update(overrides)
    return body


def headers(token: str, key: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"}
    h["Idempotency-Key"] = key or str(uuid.uuid4())
    return h


def signed_event(
    payload: dict[str, Any], secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header, as Stripe computes them."""
    body = json.dumps(payload).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    signature = stripe.WebhookSignature._compute_signature(f"{ts}.{body.decode()}", secret)
    return body, f"t={ts},v1={signature}"
