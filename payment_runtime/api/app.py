"""The Starlette application: routes, error responses, health, metrics and OpenAPI.

Every error leaves as ``{"error": {"code": ..., "message": ...}}`` with a stable,
machine-readable ``code``. Mutating routes require an ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from payment_runtime import migrations, risk, tracing
from payment_runtime.adapters import fx_rates, postgres
from payment_runtime.adapters.secrets import RuntimeSecrets
from payment_runtime.adapters.stripe_gateway import PaymentGateway, StripeGateway, verify_webhook
from payment_runtime.api import jsonbody, openapi, schemas
from payment_runtime.api.auth import PROCESS, READ, REFUND, Authenticator, KeySource, Role
from payment_runtime.domain import fx, idempotency, providers, stripe_amounts, velocity
from payment_runtime.domain.money import Money, MoneyError
from payment_runtime.errors import ApiError
from payment_runtime.metrics import Metrics, labelled
from payment_runtime.service import KeyRequest, Outcome, PaymentService
from payment_runtime.settings import Settings

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Runtime:
    """What the handlers need, built in the app's lifespan."""

    settings: Settings
    metrics: Metrics
    authenticator: Authenticator
    webhook_secret: str | None  # None: no webhook secret configured, webhooks disabled
    service: PaymentService | None = None
    pool: Any = None
    rates: fx_rates.RatesFile | None = None  # with a reporting currency
    risk_checks: risk.RiskChecks | None = None


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _outcome_label(status: int, body: Any) -> str:
    if status >= 500:
        return "error"
    if isinstance(body, dict) and body.get("error", {}).get("code") == velocity.REFUSAL_CODE:
        return "refused"
    if status == 402 or (isinstance(body, dict) and body.get("status") == "failed"):
        return "declined"
    if status >= 400:
        return "rejected"
    return "success"


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _svc(request: Request) -> PaymentService:
    service = _rt(request).service
    if service is None:
        raise ApiError(503, "not_ready", "the service is starting")
    return service


def endpoint(route: str, operation: str | None = None) -> Callable[[Handler], Handler]:
    """Wrap a handler: error responses, latency histogram, payment outcome counter."""

    def wrap(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            metrics = _rt(request).metrics
            started = time.perf_counter()
            try:
                response = await handler(request)
            except ApiError as exc:
                response = _error(exc)
            except Exception:
                log.exception("unhandled error", extra={"route": route})
                response = _error(ApiError(500, "internal_error", "internal error"))
            usage = getattr(request.state, "rate_limit", None)
            if usage is not None:  # RateLimit-* (and Retry-After) on every answer it counted
                response.headers.update(usage.headers())
            metrics.http_duration.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started
            )
            if operation is not None:
                body: Any = None
                status = response.status_code
                if isinstance(response, JSONResponse) and (status < 300 or status == 402):
                    body = json.loads(bytes(response.body))
                outcome = _outcome_label(response.status_code, body)
                metrics.payment_requests.labels(operation, outcome).inc()
                # At debug: one line per payment operation, within its trace (trace_id,
                # span_id). Formatting a redacted JSON line costs ~0.13 ms: not at INFO.
                log.debug(
                    "payment request",
                    extra={
                        "operation": operation,
                        "status": response.status_code,
                        "outcome": outcome,
                    },
                )
            return response

        return run

    return wrap


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise ApiError(413, "body_too_large", f"request bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"request bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_json(request: Request, model: type[M], *, optional: bool = False) -> tuple[M, Any]:
    raw = await _read_body(request, _rt(request).settings.max_body_bytes)
    if not raw.strip() and optional:
        data: Any = {}
    else:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, "unsupported_media_type", "send application/json")
        data = jsonbody.loads(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    try:
        return model.model_validate(data), data
    except ValidationError as exc:
        # Field locations and error types only: never echo the (possibly personal) input.
        details = {
            "fields": [
                {"field": ".".join(str(p) for p in e["loc"]), "type": e["type"]}
                for e in exc.errors()
            ]
        }
        raise ApiError(422, "validation_error", "the request body is invalid", details) from exc


def _payment_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["payment_id"])
    except ValueError as exc:
        raise ApiError(404, "payment_not_found", "no such payment") from exc


async def _authorize(
    request: Request, allowed: frozenset[Role], *, rate_limited: bool = False
) -> str:
    runtime = _rt(request)
    principal = await runtime.authenticator.authenticate(request.headers.get("authorization"))
    runtime.authenticator.require(principal, allowed)
    if rate_limited and runtime.risk_checks is not None:
        request.state.rate_limit = await runtime.risk_checks.count_request(principal.subject)
        risk.enforce(request.state.rate_limit)
    return principal.subject


def _key_request(request: Request, subject: str, body: Any) -> KeyRequest:
    try:
        key = idempotency.validate_key(request.headers.get("idempotency-key"))
    except idempotency.IdempotencyError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    path = request.url.path
    return KeyRequest(
        subject, key, request.method, path, idempotency.fingerprint(request.method, path, body)
    )


def _respond(outcome: Outcome) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)


# --- payment routes -------------------------------------------------------------------


@endpoint("/api/v1/payments", "create")
async def create_payment(request: Request) -> Response:
    checks = _rt(request).risk_checks
    if checks is None or not checks.gates_payments:
        subject = await _authorize(request, PROCESS, rate_limited=True)
        return await _create(request, subject, checks.screen_payment if checks else None)
    # Rate limit and velocity both on: one Redis round trip, after the key is claimed.
    subject = await _authorize(request, PROCESS)
    gate = checks.payment_gate(subject)
    try:
        response = await _create(request, subject, gate.screen)
    except ApiError:
        request.state.rate_limit = gate.usage if gate.counted else await gate.count()
        risk.enforce(request.state.rate_limit)  # over the quota: 429, like before any work
        raise
    request.state.rate_limit = await gate.count()  # a replay was not screened
    risk.enforce(request.state.rate_limit)
    return response


async def _create(
    request: Request, subject: str, screen: Callable[[velocity.Attempt], Awaitable[None]] | None
) -> Response:
    _key_request(request, subject, None)  # refuse a missing/invalid key before the body
    body, raw = await _read_json(request, schemas.CreatePayment)
    try:
        money = Money.of(body.amount, body.currency)
        stripe_amounts.to_stripe(money)  # refuse what Stripe cannot charge exactly
    except MoneyError as exc:
        raise ApiError(422, exc.code, exc.message) from exc
    req = _key_request(request, subject, raw)
    runtime = _rt(request)
    try:
        outcome = await _svc(request).create_payment(
            req, money, body.customer, body.payment_method, body.description, screen=screen
        )
    except ApiError as exc:
        if exc.status != 429:  # over the quota: not a payment attempt (nor before the gate)
            _count_volume(runtime, money, _outcome_label(exc.status, None))
        raise
    except Exception:
        _count_volume(runtime, money, "error")
        raise
    if not outcome.replayed:
        _count_volume(runtime, money, _outcome_label(outcome.status, outcome.body))
    return _respond(outcome)


def _count_volume(runtime: Runtime, money: Money, outcome: str) -> None:
    """Add ``money``, converted to the reporting currency, to the volume counter (the
    charged amount itself is never converted). A replayed response is not counted again."""
    if runtime.rates is None:
        return
    table = runtime.rates.table
    try:
        converted = fx.to_reporting(money, table)
    except fx.NoRate:
        runtime.metrics.payment_volume_unconverted.labels(money.currency.code).inc()
        return
    runtime.metrics.payment_volume.labels(outcome, table.reporting.code).inc(
        float(fx.major_units(converted))
    )


@endpoint("/api/v1/payments/{payment_id}")
async def get_payment(request: Request) -> Response:
    await _authorize(request, READ)
    return JSONResponse(await _svc(request).get(_payment_id(request)))


@endpoint("/api/v1/payments/{payment_id}/capture", "capture")
async def capture_payment(request: Request) -> Response:
    subject = await _authorize(request, PROCESS, rate_limited=True)
    _, raw = await _read_json(request, schemas.Empty, optional=True)
    req = _key_request(request, subject, raw)
    return _respond(await _svc(request).capture(req, _payment_id(request)))


@endpoint("/api/v1/payments/{payment_id}/cancel", "cancel")
async def cancel_payment(request: Request) -> Response:
    subject = await _authorize(request, PROCESS, rate_limited=True)
    _, raw = await _read_json(request, schemas.Empty, optional=True)
    req = _key_request(request, subject, raw)
    return _respond(await _svc(request).cancel(req, _payment_id(request)))


@endpoint("/api/v1/payments/{payment_id}/refunds", "refund")
async def refund_payment(request: Request) -> Response:
    subject = await _authorize(request, REFUND, rate_limited=True)
    body, raw = await _read_json(request, schemas.CreateRefund, optional=True)
    req = _key_request(request, subject, raw)
    return _respond(await _svc(request).refund(req, _payment_id(request), body.amount))


@endpoint("/api/v1/payments/providers/{country}")
async def payment_providers(request: Request) -> Response:
    await _authorize(request, READ)
    country = request.path_params["country"]
    try:
        methods = providers.methods_for(country)
    except providers.CountryError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    return JSONResponse({"country": country.upper(), "payment_methods": methods})


def webhook_event(document: Any) -> dict[str, Any]:
    """A signed event's JSON, checked for the shape the service reads: an object with a
    string ``id`` and ``type``, and ``data.object`` an object when present."""
    invalid = ApiError(400, "invalid_event", "the body is not a Stripe event")
    if not isinstance(document, dict):
        raise invalid
    if not isinstance(document.get("id"), str) or not document["id"]:
        raise invalid
    if not isinstance(document.get("type"), str):
        raise invalid
    data = document.get("data", {})
    if not isinstance(data, dict) or not isinstance(data.get("object", {}), dict):
        raise invalid
    return document


@endpoint("/webhooks/stripe")
async def stripe_webhook(request: Request) -> Response:
    runtime = _rt(request)
    if runtime.webhook_secret is None:
        runtime.metrics.webhook_events.labels("unknown", "disabled").inc()
        raise ApiError(
            404,
            "webhooks_disabled",
            "Stripe webhooks are disabled: no webhook secret is configured",
        )
    payload = await _read_body(request, runtime.settings.max_body_bytes)
    signature = request.headers.get("stripe-signature")
    if not signature:
        raise ApiError(400, "signature_missing", "the Stripe-Signature header is required")
    try:
        verify_webhook(
            payload,
            signature,
            runtime.webhook_secret,
            runtime.settings.stripe_webhook_tolerance_seconds,
        )
    except ValueError as exc:
        runtime.metrics.webhook_events.labels("unknown", "invalid_signature").inc()
        raise ApiError(400, "invalid_signature", "the webhook signature is not valid") from exc
    try:
        event = webhook_event(jsonbody.loads(payload))
    except ApiError:
        runtime.metrics.webhook_events.labels("unknown", "invalid_event").inc()
        raise
    verdict = await _svc(request).handle_webhook(event)
    runtime.metrics.webhook_events.labels(str(event.get("type")), verdict).inc()
    log.info("webhook", extra={"event_id": event.get("id"), "verdict": verdict})
    return JSONResponse({"received": True, "result": verdict})


# --- operations -------------------------------------------------------------------------


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    runtime = _rt(request)
    expected = migrations.expected_version()
    if runtime.pool is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    if runtime.risk_checks is not None and not await runtime.risk_checks.ready():
        return JSONResponse({"status": "risk_checks_unavailable"}, status_code=503)
    try:
        async with runtime.pool.connection(timeout=2) as conn:
            cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
            row = await cur.fetchone()
    except Exception:
        return JSONResponse({"status": "database_unavailable"}, status_code=503)
    version = int(row["v"]) if row else 0
    body = {"status": "ready", "schema_version": version, "expected_version": expected}
    if version < expected:
        body["status"] = "migrations_pending"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


async def metrics_endpoint(request: Request) -> Response:
    """The registry as it is: the outbox gauges come from :func:`refresh_outbox_stats`, so
    a scrape never waits on (or opens) a database connection."""
    runtime = _rt(request)
    exposed = labelled(runtime.metrics.registry, runtime.settings.revision)
    return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)


async def refresh_outbox_stats(pool: Any, metrics: Metrics, interval: float) -> None:
    """Update the outbox gauges every ``interval`` seconds until cancelled."""
    failing = False
    while True:
        try:
            async with pool.connection(timeout=interval) as conn:
                # A locked table must not hold a pool connection for longer than a round.
                timeout_ms = str(int(max(interval, 1.0) * 1000))
                await conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)", (timeout_ms,)
                )
                pending, lag = await postgres.outbox_stats(conn)
                await conn.rollback()
            metrics.outbox_pending.set(pending)
            metrics.outbox_lag.set(lag)
            failing = False
        except Exception:
            if not failing:  # once per outage, not once per interval
                log.warning("could not read the outbox statistics", exc_info=True)
            failing = True
        await asyncio.sleep(interval)


async def _purge(pool: Any, settings: Settings) -> tuple[int, int]:
    """One round: delete expired keys, then event ids, in batches of one transaction."""
    batch = settings.retention_batch_size
    counts = []
    for purge, hours in (
        (postgres.purge_idempotency_keys, settings.idempotency_retention_hours),
        (postgres.purge_webhook_events, settings.webhook_event_retention_hours),
    ):
        total = 0
        while True:
            async with pool.connection() as conn, conn.transaction():
                deleted = await purge(conn, older_than_seconds=hours * 3600, limit=batch)
            total += deleted
            if deleted < batch:
                break
        counts.append(total)
    return counts[0], counts[1]


async def purge_expired(pool: Any, settings: Settings) -> None:
    """Purge expired idempotency keys and webhook event ids every retention interval,
    until cancelled; off the request path, so a request never waits for it."""
    failing = False
    while True:
        try:
            keys, events = await _purge(pool, settings)
            if keys or events:
                log.info(
                    "purged expired idempotency keys and webhook event ids",
                    extra={"idempotency_keys": keys, "webhook_events": events},
                )
            failing = False
        except Exception:
            if not failing:
                log.warning("could not purge expired keys and event ids", exc_info=True)
            failing = True
        await asyncio.sleep(settings.retention_interval_seconds)


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.document())


ROUTES = [
    Route("/api/v1/payments", create_payment, methods=["POST"]),
    Route("/api/v1/payments/providers/{country}", payment_providers, methods=["GET"]),
    Route("/api/v1/payments/{payment_id}", get_payment, methods=["GET"]),
    Route("/api/v1/payments/{payment_id}/capture", capture_payment, methods=["POST"]),
    Route("/api/v1/payments/{payment_id}/cancel", cancel_payment, methods=["POST"]),
    Route("/api/v1/payments/{payment_id}/refunds", refund_payment, methods=["POST"]),
    Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/openapi.json", openapi_document, methods=["GET"]),
]


class MetricsPortDispatch:
    """ASGI wrapper for serving one app on two listeners: the main port and a metrics port.

    Requests that arrive on ``metrics_port`` (the local port of the connection) see only
    ``/metrics``; the main port serves the rest of the app, and ``/metrics`` there is a 404
    too, so whatever exposes the main port (an Ingress, a caller of the API) cannot read
    the metrics. Both refusals are ``not_found``. Lifespan events pass through unchanged.
    """

    def __init__(self, app: ASGIApp, metrics_port: int) -> None:
        self.app = app
        self.metrics_port = metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            on_metrics_port = server is not None and server[1] == self.metrics_port
            wants_metrics = scope.get("path") == "/metrics"
            if on_metrics_port != wants_metrics:
                message = (
                    "only /metrics is served on the metrics port"
                    if on_metrics_port
                    else "/metrics is served on the metrics port only"
                )
                await _error(ApiError(404, "not_found", message))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings,
    secrets: RuntimeSecrets,
    *,
    key_source: KeySource | None = None,
    wrap_gateway: Callable[[PaymentGateway], PaymentGateway] | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """Build the app; the pool and Stripe client open in its lifespan."""
    metrics = metrics or Metrics()
    authenticator = Authenticator(
        key_source or KeySource(url=settings.jwks_url, cache_seconds=settings.jwks_cache_seconds),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        algorithms=settings.jwt_algorithms,
        roles_claim=settings.jwt_roles_claim,
        leeway=settings.jwt_leeway_seconds,
    )
    runtime = Runtime(settings, metrics, authenticator, secrets.stripe_webhook_secret)
    # A bad rate table stops the start here (fx.RateTableError names the entry).
    runtime.rates = fx_rates.load(settings.fx_rates_file, settings.reporting_currency)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await postgres.open_pool(
            secrets.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout=settings.db_pool_timeout_seconds,
        )
        gateway: PaymentGateway = StripeGateway(secrets.stripe_api_key, settings, metrics)
        if wrap_gateway is not None:
            gateway = wrap_gateway(gateway)
        runtime.pool = pool
        runtime.risk_checks = risk.from_settings(settings, metrics, secrets.redis_url)
        runtime.service = PaymentService(
            pool,
            gateway,
            metrics,
            topic=settings.kafka_topic,
            lock_timeout=timedelta(seconds=settings.idempotency_lock_timeout_seconds),
        )
        stats = asyncio.create_task(
            refresh_outbox_stats(pool, metrics, settings.outbox_stats_interval_seconds),
            name="outbox-stats",
        )
        purge = asyncio.create_task(purge_expired(pool, settings), name="retention")
        tasks = [stats, purge]
        if runtime.rates is not None:
            tasks.append(
                asyncio.create_task(
                    fx_rates.watch(runtime.rates, settings.fx_rates_reload_seconds), name="fx"
                )
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            runtime.service = None
            runtime.pool = None
            if runtime.risk_checks is not None:
                await runtime.risk_checks.store.close()
                runtime.risk_checks = None
            await gateway.close()
            await pool.close()

    app = Starlette(routes=ROUTES, lifespan=lifespan, middleware=tracing.middleware(ROUTES))
    app.state.runtime = runtime
    return app
