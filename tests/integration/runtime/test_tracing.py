"""Tracing of the payment path, in process, with the SDK's in-memory span exporter.

The app runs against the real PostgreSQL and stripe-mock (a payment needs both), so these are
integration tests; what they check is the trace: one payment request is one trace whose
server span has the database transactions and the Stripe call as descendants, an incoming
``traceparent`` is honoured, and log lines carry the trace id, on and off.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Consumer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from payment_runtime import logs, tracing
from payment_runtime.adapters.kafka_relay import OutboxRelay, drain, make_producer
from payment_runtime.domain.idempotency import stripe_key
from payment_runtime.metrics import Metrics
from tests.integration.runtime.helpers import (
    STRIPE_KEY,
    headers,
    payment_body,
    running_app,
)

pytestmark = pytest.mark.integration

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)  # the per-request line is at debug
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO, message: str) -> list[dict]:
    found = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [d for d in found if d["message"] == message]


def _pay(dsn, stripe_mock, signer, extra_headers=None, **settings) -> tuple[int, str, str]:
    """One payment through the app; its status, payment id and Idempotency-Key."""

    async def go():
        async with running_app(dsn, stripe_mock.api_base, signer, **settings) as client:
            h = headers(signer.token("payment_operator"))
            h.update(extra_headers or {})
            r = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            return r.status_code, r.json()["id"], h["Idempotency-Key"]

    return asyncio.run(go())


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def _stored_trace_context(dsn: str, payment_id: str) -> dict | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT trace_context FROM outbox WHERE message_key = %s", (payment_id,)
        ).fetchone()
    assert row is not None, "the payment wrote no outbox event"
    return row[0]


def test_one_payment_is_one_trace_with_db_and_stripe_spans(
    dsn, stripe_mock, signer, spans, log_lines
):
    status, payment_id, key = _pay(dsn, stripe_mock, signer)
    assert status == 201
    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["POST /api/v1/payments"]
    server = servers[0]
    assert server.attributes["http.route"] == "/api/v1/payments"
    assert server.attributes["http.status_code"] == 201
    assert server.parent is None  # no caller: a new trace
    assert {s.context.trace_id for s in finished} == {server.context.trace_id}

    by_id = {s.context.span_id: s for s in finished}
    descendants = [s for s in finished if server in _ancestors(s, by_id)]
    names = [s.name for s in descendants]
    assert names.count("stripe create_payment_intent") == 1
    # Two transactions around the Stripe call: the key taken with the payment row, the end.
    assert [n for n in names if n.startswith("transaction ")] == [
        "transaction begin_key", "transaction finish"
    ], names
    stripe_span = next(s for s in descendants if s.name.startswith("stripe "))
    assert stripe_span.kind is SpanKind.CLIENT
    assert stripe_span.attributes["paydeck.stripe.operation"] == "create_payment_intent"
    assert stripe_span.attributes["server.address"] == "127.0.0.1"
    db_span = next(s for s in descendants if s.name == "transaction finish")
    assert db_span.kind is SpanKind.CLIENT
    assert db_span.attributes["db.system.name"] == "postgresql"

    # Neither the Stripe key nor an idempotency key (ours or the one derived for Stripe).
    shown = json.dumps([dict(s.attributes or {}) for s in finished] + [s.name for s in finished])
    for secret in (STRIPE_KEY, key, stripe_key("create_intent", payment_id)):
        assert secret not in shown

    # The outbox row carries the trace, and the request's log line its ids.
    stored = _stored_trace_context(dsn, payment_id)
    assert stored["traceparent"].split("-")[1] == _hex(server.context.trace_id, 32)
    (line,) = _lines(log_lines, "payment request")
    assert line["trace_id"] == _hex(server.context.trace_id, 32)
    assert line["span_id"] in {_hex(s.context.span_id, 16) for s in finished}


def test_an_incoming_traceparent_is_honoured(dsn, stripe_mock, signer, spans, log_lines):
    status, payment_id, _ = _pay(dsn, stripe_mock, signer, {"traceparent": CALLER})
    assert status == 201
    finished = spans.get_finished_spans()
    assert {_hex(s.context.trace_id, 32) for s in finished} == {CALLER_TRACE}
    (server,) = [s for s in finished if s.kind is SpanKind.SERVER]
    assert server.parent is not None and server.parent.is_remote
    assert _hex(server.parent.span_id, 16) == CALLER_SPAN
    assert _stored_trace_context(dsn, payment_id)["traceparent"].split("-")[1] == CALLER_TRACE
    (line,) = _lines(log_lines, "payment request")
    assert line["trace_id"] == CALLER_TRACE


def test_an_unsampled_caller_records_nothing(dsn, stripe_mock, signer, spans):
    """Parent-based sampling: a caller's "not sampled" flag is followed (the SDK's default
    sampler is ParentBased too; configure() sets the ratio for new traces)."""
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    status, payment_id, _ = _pay(dsn, stripe_mock, signer, {"traceparent": unsampled})
    assert status == 201
    assert spans.get_finished_spans() == ()
    stored = _stored_trace_context(dsn, payment_id)
    assert stored["traceparent"].startswith(f"00-{CALLER_TRACE}-") and stored[
        "traceparent"
    ].endswith("-00")


def test_tracing_off_still_carries_the_callers_trace_to_logs_and_kafka(
    dsn, stripe_mock, signer, kafka, log_lines
):
    assert not tracing.enabled()
    topic = f"payment.events.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=1)
    state = f"vendor=opaque{uuid.uuid4().hex[:6]}"
    status, payment_id, _ = _pay(
        dsn,
        stripe_mock,
        signer,
        {"traceparent": CALLER, "tracestate": state, "baggage": "user=someone"},
        kafka_topic=topic,
    )
    assert status == 201
    assert _stored_trace_context(dsn, payment_id) == {"traceparent": CALLER, "tracestate": state}
    (line,) = _lines(log_lines, "payment request")
    assert (line["trace_id"], line["span_id"]) == (CALLER_TRACE, CALLER_SPAN)

    relay = OutboxRelay(dsn, make_producer(kafka.bootstrap_servers, 10000), Metrics())
    assert drain(relay, deadline_seconds=30) == 1
    relay.close()
    message_headers = _one_message_headers(kafka.bootstrap_servers, topic)
    assert message_headers["traceparent"] == CALLER.encode()
    assert message_headers["tracestate"] == state.encode()
    assert "baggage" not in message_headers


def test_a_request_without_traceparent_has_no_trace_when_off(dsn, stripe_mock, signer, log_lines):
    status, payment_id, _ = _pay(dsn, stripe_mock, signer)
    assert status == 201
    assert _stored_trace_context(dsn, payment_id) is None
    (line,) = _lines(log_lines, "payment request")
    assert "trace_id" not in line


def _one_message_headers(bootstrap: str, topic: str) -> dict[str, bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                return dict(msg.headers())
    finally:
        consumer.close()
    raise AssertionError(f"no message on {topic}")


def test_a_failed_stripe_call_marks_its_span_and_the_request(dsn, signer, spans):
    """Stripe unreachable: the Stripe span fails with the error's type (no message), the
    request is a 503 and its server span an error, and the key's release is traced too."""

    async def go():
        async with running_app(dsn, "http://127.0.0.1:9", signer) as client:
            h = headers(signer.token("payment_operator"))
            # Bounded: once in a full-suite run this request never finished; a timeout's
            # traceback says where it waits (pytest-timeout's only showed the event loop).
            return await asyncio.wait_for(
                client.post("/api/v1/payments", json=payment_body(), headers=h), 60)

    response = asyncio.run(go())
    assert response.status_code == 503
    finished = spans.get_finished_spans()
    (stripe_span,) = [s for s in finished if s.name == "stripe create_payment_intent"]
    assert stripe_span.status.status_code is StatusCode.ERROR
    assert stripe_span.attributes["error.type"] == "StripeUnavailable"
    assert not stripe_span.events  # no exception event: its message could hold anything
    (server,) = [s for s in finished if s.kind is SpanKind.SERVER]
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["http.status_code"] == 503
    assert "transaction release_key" in [s.name for s in finished]
