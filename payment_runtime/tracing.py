"""OpenTelemetry tracing of the payment path: setup, spans, W3C trace context.

Off by default (no ``PAYMENT_TRACING_OTLP_ENDPOINT``): no SDK is loaded and :func:`span` is a
no-op that creates nothing. An incoming ``traceparent`` is still honoured: a small ASGI
middleware (:class:`TraceContextMiddleware`) makes it the request's context, so log lines carry
the caller's trace id and outbox rows store it for the Kafka message headers.

On: an SDK ``TracerProvider`` with a parent-based ratio sampler and a ``BatchSpanProcessor``
over the OTLP/HTTP protobuf exporter (no gRPC); opentelemetry-instrumentation-asgi's
middleware makes one server span per request, named by the route template. The adapters open
client spans through :func:`span` (a database transaction, a Stripe call) and producer spans
through :func:`publish_span` (the outbox relay). :func:`shutdown` flushes what is queued.

Only W3C ``traceparent``/``tracestate`` are stored and forwarded (never baggage, which a caller
may fill with anything), and spans never record exception messages: only the error's type.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from payment_runtime.errors import ApiError
from payment_runtime.settings import Settings

INSTRUMENTATION_NAME = "payment_runtime"
#: Seconds one export may take (retries included); a graceful shutdown waits for it at most.
EXPORT_TIMEOUT_SECONDS = 5.0
#: Requests that get no server span: probes, scrapes, the API description.
EXCLUDED_URLS = "/health,/metrics,/openapi.json"
W3C_FIELDS = ("traceparent", "tracestate")

_W3C = TraceContextTextMapPropagator()
_provider: trace.TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()


# --- setup ---------------------------------------------------------------------------


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a receiver's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT)."""
    return endpoint.rstrip("/") + "/v1/traces"


def resource_attributes(settings: Settings, host: str) -> dict[str, str]:
    """``service.*`` of every span: the PaymentService's name, its revision, the pod."""
    attributes = {"service.name": settings.tracing_service_name, "service.instance.id": host}
    if settings.revision is not None:
        attributes["service.version"] = settings.revision
    return attributes


def install(provider: trace.TracerProvider | None) -> None:
    """Record spans with ``provider`` from now on (None: off). Tests install an in-memory one."""
    global _provider, _tracer
    _provider = provider
    _tracer = trace.NoOpTracer() if provider is None else provider.get_tracer(INSTRUMENTATION_NAME)


def enabled() -> bool:
    """Whether spans are recorded (a provider is installed)."""
    return _provider is not None


def configure(settings: Settings) -> None:
    """Install the OTLP-exporting provider the settings ask for, or nothing (off)."""
    if settings.tracing_otlp_endpoint is None:
        install(None)
        return
    # Imported only when on: tracing off loads no SDK and no exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create(resource_attributes(settings, socket.gethostname())),
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
        shutdown_on_exit=False,  # shutdown() does it, after the relay thread has stopped
    )
    exporter = OTLPSpanExporter(
        endpoint=traces_url(settings.tracing_otlp_endpoint), timeout=EXPORT_TIMEOUT_SECONDS
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)


def shutdown() -> None:
    """Export what the batch processor still holds, then stop recording."""
    provider = _provider
    install(None)
    close: Callable[[], object] | None = getattr(provider, "shutdown", None)
    if close is not None:
        close()


# --- the HTTP server span ------------------------------------------------------------


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    """The path template (``/api/v1/payments/{payment_id}``) of the route ``scope`` hits."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None)
    return None


def span_details(routes: Sequence[BaseRoute]) -> Callable[[Scope], tuple[str, dict[str, Any]]]:
    """The ASGI middleware's namer: ``POST /api/v1/payments`` and ``http.route``."""

    def details(scope: Scope) -> tuple[str, dict[str, Any]]:
        method = str(scope.get("method", "HTTP"))
        template = route_template(routes, scope)
        if template is None:
            return method, {}
        return f"{method} {template}", {"http.route": template}

    return details


class TraceContextMiddleware:
    """Tracing off: a request's W3C ``traceparent`` (and ``tracestate``) becomes its context.

    Nothing is recorded; log lines and outbox rows written during the request carry the
    caller's trace. A request without the header costs one scan of its header list.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in (b"traceparent", b"tracestate"):
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        if "traceparent" not in carrier:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(_W3C.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)


def middleware(routes: Sequence[BaseRoute]) -> list[Middleware]:
    """The app's tracing middleware: a server span per request when on, else propagation."""
    if _provider is None:
        return [Middleware(TraceContextMiddleware)]
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return [
        Middleware(
            OpenTelemetryMiddleware,
            excluded_urls=EXCLUDED_URLS,
            default_span_details=span_details(routes),
            tracer_provider=_provider,
            exclude_spans=["receive", "send"],  # one span per request, not one per message
        )
    ]


# --- client and producer spans -------------------------------------------------------


def _failed(current: Span, exc: BaseException) -> None:
    """Mark ``current`` failed by the error's type (its message may hold input data)."""
    if isinstance(exc, ApiError) and exc.status < 500:
        current.set_attribute("paydeck.refusal", exc.code)  # a refusal, not a failure
        return
    current.set_attribute("error.type", type(exc).__name__)
    current.set_status(Status(StatusCode.ERROR, type(exc).__name__))


@contextlib.contextmanager
def span(
    name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, str] | None = None
) -> Iterator[Span]:
    """A child span of the current context around the block; nothing at all when off, nor
    under an unsampled parent (the parent-based sampler would drop the child anyway)."""
    if _provider is None:
        yield INVALID_SPAN
        return
    parent = trace.get_current_span()
    parent_context = parent.get_span_context()
    if parent_context.is_valid and not parent_context.trace_flags.sampled:
        yield parent
        return
    with _tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            _failed(current, exc)
            raise


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers, to store with an outbox row; None outside
    a trace."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    out: dict[str, str] = {}
    _W3C.inject(out)
    return out or None


def stored_headers(stored: Mapping[str, Any] | None) -> dict[str, str]:
    """The W3C fields of a stored carrier, and nothing else."""
    if not stored:
        return {}
    return {k: str(stored[k]) for k in W3C_FIELDS if isinstance(stored.get(k), str)}


def publish_span(
    topic: str, attributes: Mapping[str, str], stored: Mapping[str, Any] | None
) -> tuple[Span, dict[str, str]]:
    """A producer span for one Kafka message and the W3C headers the message carries.

    ``stored`` is the outbox row's trace context: the span is its child, so the publish
    joins the payment's trace although it runs later (and maybe in another process), and the
    headers carry the span's ``traceparent``. Off, or for a row without a context: no span,
    and the stored headers as they are. The caller ends the span when Kafka answered.
    """
    headers = stored_headers(stored)
    if _provider is None or not headers:
        return INVALID_SPAN, headers
    parent = _W3C.extract(headers)
    current = _tracer.start_span(
        f"send {topic}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
            **attributes,
        },
    )
    out: dict[str, str] = {}
    _W3C.inject(out, context=trace.set_span_in_context(current, parent))
    return current, out


def end_publish(current: Span, error: str | None) -> None:
    """End a :func:`publish_span` span: acknowledged, or failed with Kafka's error name."""
    if error is not None:
        current.set_attribute("error.type", error)
        current.set_status(Status(StatusCode.ERROR, error))
    current.end()


def current_ids() -> tuple[str, str] | None:
    """The current trace and span id in hex (as log lines show them), None outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
