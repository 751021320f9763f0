"""Tracing's pure parts: settings, names, W3C carriers, the off-mode middleware, log ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError

from payment_runtime import logs, tracing
from payment_runtime.api.app import ROUTES
from payment_runtime.errors import ApiError
from payment_runtime.settings import Settings

pytestmark = pytest.mark.unit

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)


def test_settings_bounds_and_defaults():
    settings = Settings()
    assert settings.tracing_otlp_endpoint is None  # off by default
    assert settings.tracing_sample_ratio == 1.0
    ok = Settings(tracing_otlp_endpoint="http://otel-collector.observability:4318")
    assert tracing.traces_url(ok.tracing_otlp_endpoint) == (
        "http://otel-collector.observability:4318/v1/traces"
    )
    assert tracing.traces_url("https://otel.example/base/") == "https://otel.example/base/v1/traces"
    for bad in ("otel:4318", "http://user:pw@otel:4318", "http://otel:4318/?token=x", "ftp://o"):
        with pytest.raises(ValidationError):
            Settings(tracing_otlp_endpoint=bad)
    for ratio in (-0.1, 1.5):
        with pytest.raises(ValidationError):
            Settings(tracing_sample_ratio=ratio)


def test_resource_names_the_service_and_revision():
    settings = Settings(tracing_service_name="pay", revision="abc123")
    assert tracing.resource_attributes(settings, "pod-1") == {
        "service.name": "pay",
        "service.version": "abc123",
        "service.instance.id": "pod-1",
    }
    assert "service.version" not in tracing.resource_attributes(Settings(), "h")


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("POST", "/api/v1/payments", "POST /api/v1/payments"),
        ("GET", "/api/v1/payments/abc", "GET /api/v1/payments/{payment_id}"),
        ("POST", "/api/v1/payments/abc/refunds", "POST /api/v1/payments/{payment_id}/refunds"),
        ("GET", "/nowhere", "GET"),
    ],
)
def test_server_spans_are_named_by_route_template(method, path, name):
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    assert tracing.span_details(ROUTES)(scope)[0] == name


def test_off_spans_create_nothing_and_carrier_is_empty():
    assert not tracing.enabled()
    with tracing.span("x", SpanKind.CLIENT) as current:
        assert not current.is_recording()
        assert tracing.carrier() is None
    span, headers = tracing.publish_span("t", {}, {"traceparent": TRACEPARENT, "baggage": "u=1"})
    assert not span.is_recording()
    assert headers == {"traceparent": TRACEPARENT}  # forwarded as stored; never baggage


def test_off_middleware_makes_the_callers_trace_current():
    seen = []

    async def app(scope, receive, send):
        seen.append(tracing.current_ids())
        seen.append(tracing.carrier())

    middleware = tracing.TraceContextMiddleware(app)
    scope = {"type": "http", "headers": [(b"traceparent", TRACEPARENT.encode())]}
    asyncio.run(middleware(scope, None, None))
    assert seen == [(TRACE, PARENT), {"traceparent": TRACEPARENT}]
    seen.clear()
    asyncio.run(middleware({"type": "http", "headers": [(b"x-other", b"1")]}, None, None))
    assert seen == [None, None]
    assert tracing.current_ids() is None  # detached afterwards


def test_spans_record_the_error_type_never_the_message(spans):
    with pytest.raises(RuntimeError), tracing.span("boom"):
        raise RuntimeError("card 4242 4242 4242 4242 of alice@example.com")
    with pytest.raises(ApiError), tracing.span("refused"):
        raise ApiError(404, "payment_not_found", "no payment")
    boom, refused = spans.get_finished_spans()
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.attributes["error.type"] == "RuntimeError"
    assert "4242" not in json.dumps([boom.status.description, list(boom.events)], default=str)
    assert refused.status.status_code is StatusCode.UNSET  # a 4xx refusal is no failure
    assert refused.attributes["paydeck.refusal"] == "payment_not_found"


def test_publish_span_is_a_child_of_the_stored_context(spans):
    span, headers = tracing.publish_span(
        "payment.events", {"messaging.message.id": "e-1"}, {"traceparent": TRACEPARENT}
    )
    tracing.end_publish(span, None)
    (published,) = spans.get_finished_spans()
    assert published.kind is SpanKind.PRODUCER
    assert format(published.context.trace_id, "032x") == TRACE
    assert format(published.parent.span_id, "016x") == PARENT
    own = format(published.context.span_id, "016x")
    assert headers == {"traceparent": f"00-{TRACE}-{own}-01"}
    failed, _ = tracing.publish_span("t", {}, {"traceparent": TRACEPARENT})
    tracing.end_publish(failed, "_MSG_TIMED_OUT")
    assert spans.get_finished_spans()[1].attributes["error.type"] == "_MSG_TIMED_OUT"
    none, no_headers = tracing.publish_span("t", {}, None)  # a row written outside a trace
    assert not none.is_recording() and no_headers == {}


def test_log_lines_carry_trace_and_span_id_only_inside_a_span(spans):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("paydeck.test.tracing")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("outside")
        with tracing.span("inside") as current:
            log.warning("inside")
        ctx = current.get_span_context()
    finally:
        log.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "trace_id" not in outside and "span_id" not in outside
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert trace.get_current_span().get_span_context().is_valid is False


def test_no_child_span_is_made_under_an_unsampled_parent(spans):
    from opentelemetry import context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    unsampled = TraceContextTextMapPropagator().extract({"traceparent": f"00-{TRACE}-{PARENT}-00"})
    token = context.attach(unsampled)
    try:
        with tracing.span("child", SpanKind.CLIENT) as current:
            assert tracing.current_ids() == (TRACE, PARENT)  # still the caller's span
            assert not current.is_recording()
    finally:
        context.detach(token)
    assert spans.get_finished_spans() == ()
    with tracing.span("root") as root:  # without a parent: a new, sampled trace
        assert root.is_recording()
