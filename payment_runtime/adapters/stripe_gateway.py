"""Stripe through the official SDK's ``StripeClient``: pinned API version, timeout,
network retries, configurable base URL (stripe-mock in tests), async calls over the SDK's
aiohttp client: one ``ClientSession`` whose connector keeps connections alive between calls
(the SDK's httpx client cost several times more CPU per call: httpcore re-imported sniffio and
re-created its cancellation shields on every request).

Every mutating call takes an idempotency key derived from our own ids (see
:func:`payment_runtime.domain.idempotency.stripe_key`). The SDK's network retries reuse
it, and so does a request resumed after a crash.

Each call is one client span ``stripe <operation>`` (:mod:`payment_runtime.tracing`): the
operation and Stripe's host as attributes, the error's type when it fails; never the API
key, the idempotency key or what the call sends.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
import stripe
from opentelemetry.trace import SpanKind

from payment_runtime import tracing
from payment_runtime.metrics import Metrics
from payment_runtime.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IntentResult:
    """What we keep of a PaymentIntent."""

    id: str
    status: str


@dataclass(frozen=True, slots=True)
class RefundResult:
    """What we keep of a Refund."""

    id: str
    status: str


class CardDeclined(Exception):
    """Stripe refused the payment (a card error): final, not retryable as-is."""

    def __init__(self, decline_code: str | None, message: str) -> None:
        super().__init__(message)
        self.decline_code = decline_code


class StripeRejected(Exception):
    """Stripe refused the request as invalid (4xx other than a card error); ``code`` is
    Stripe's error code (``amount_too_small``...) when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StripeUnavailable(Exception):
    """Stripe could not be reached or failed (5xx, timeout): retry later, same key."""


class PaymentGateway(Protocol):
    """The payment operations the runtime needs from Stripe; amounts are Stripe's
    (:func:`payment_runtime.domain.stripe_amounts.to_stripe` of ours)."""

    async def create_intent(
        self,
        *,
        amount_minor: int,
        currency: str,
        payment_method: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> IntentResult: ...

    async def capture(self, intent_id: str, *, idempotency_key: str) -> IntentResult: ...

    async def cancel(self, intent_id: str, *, idempotency_key: str) -> IntentResult: ...

    async def refund(
        self, intent_id: str, *, amount_minor: int, idempotency_key: str, metadata: dict[str, str]
    ) -> RefundResult: ...

    async def close(self) -> None: ...


class StripeGateway:
    """:class:`PaymentGateway` over ``stripe.StripeClient``."""

    def __init__(self, api_key: str, settings: Settings, metrics: Metrics) -> None:
        self._http = stripe.AIOHTTPClient(
            timeout=aiohttp.ClientTimeout(total=settings.stripe_timeout_seconds)
        )
        base: Any = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
        self._client = stripe.StripeClient(
            api_key,
            stripe_version=settings.stripe_api_version,
            base_addresses=base,
            max_network_retries=settings.stripe_max_network_retries,
            http_client=self._http,
        )
        self._metrics = metrics
        self._host = urlsplit(settings.stripe_api_base or stripe.api_base).hostname or "stripe"

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        attributes = {"paydeck.stripe.operation": operation, "server.address": self._host}
        with tracing.span(f"stripe {operation}", SpanKind.CLIENT, attributes):
            return await self._measured(operation, call)

    async def _measured(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await call()
        except stripe.CardError as exc:
            self._metrics.stripe_errors.labels(operation, "card_declined").inc()
            raise CardDeclined(getattr(exc, "code", None), exc.user_message or "declined") from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            self._metrics.stripe_errors.labels(operation, "unavailable").inc()
            raise StripeUnavailable(type(exc).__name__) from exc
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            if status >= 500 or status in (0, 409):
                # 409: Stripe is still processing a request with the same key.
                self._metrics.stripe_errors.labels(operation, "unavailable").inc()
                raise StripeUnavailable(f"stripe returned {status}") from exc
            self._metrics.stripe_errors.labels(operation, "rejected").inc()
            raise StripeRejected(
                exc.user_message or f"stripe returned {status}", getattr(exc, "code", None)
            ) from exc
        finally:
            self._metrics.stripe_duration.labels(operation).observe(time.perf_counter() - started)

    async def create_intent(
        self,
        *,
        amount_minor: int,
        currency: str,
        payment_method: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> IntentResult:
        async def call() -> IntentResult:
            intent = await self._client.v1.payment_intents.create_async(
                {
                    "amount": amount_minor,
                    "currency": currency.lower(),
                    "payment_method": payment_method,
                    "confirm": True,
                    "capture_method": "manual",
                    "metadata": metadata,
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                },
                {"idempotency_key": idempotency_key},
            )
            return IntentResult(intent.id, intent.status)

        return await self._call("create_payment_intent", call)

    async def capture(self, intent_id: str, *, idempotency_key: str) -> IntentResult:
        async def call() -> IntentResult:
            intent = await self._client.v1.payment_intents.capture_async(
                intent_id, {}, {"idempotency_key": idempotency_key}
            )
            return IntentResult(intent.id, intent.status)

        return await self._call("capture_payment_intent", call)

    async def cancel(self, intent_id: str, *, idempotency_key: str) -> IntentResult:
        async def call() -> IntentResult:
            intent = await self._client.v1.payment_intents.cancel_async(
                intent_id, {}, {"idempotency_key": idempotency_key}
            )
            return IntentResult(intent.id, intent.status)

        return await self._call("cancel_payment_intent", call)

    async def refund(
        self, intent_id: str, *, amount_minor: int, idempotency_key: str, metadata: dict[str, str]
    ) -> RefundResult:
        async def call() -> RefundResult:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": intent_id, "amount": amount_minor, "metadata": metadata},
                {"idempotency_key": idempotency_key},
            )
            return RefundResult(refund.id, refund.status or "pending")

        return await self._call("create_refund", call)

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def verify_webhook(payload: bytes, signature: str, secret: str, tolerance: int) -> None:
    """Check ``Stripe-Signature`` over the raw body; the caller parses it afterwards.

    The SDK's helper compares HMAC-SHA256 signatures in constant time and refuses
    timestamps older than ``tolerance`` seconds (at least 1: ``None`` or 0 would switch that
    check off). Raises ``ValueError`` on any failure.
    """
    if tolerance < 1:
        raise ValueError("a webhook tolerance below 1 s would accept any old event")
    try:
        stripe.WebhookSignature.verify_header(  # type: ignore[no-untyped-call]
            payload.decode("utf-8"), signature, secret, tolerance=tolerance
        )
    except stripe.SignatureVerificationError as exc:
        raise ValueError("invalid signature") from exc
