"""Tracing end to end: a real ``payment-runtime serve`` exporting to a real OTLP collector.

PostgreSQL, stripe-mock, Kafka and the in-process relay are real; the collector is the
OpenTelemetry Collector built for the test bed (``tests/fixtures/otlp.py``). One payment
request must become one trace holding the HTTP server span, the database transactions, the
Stripe call and the relay's publish, and the same trace id must be in the Kafka event's
``traceparent`` header (read by a real consumer) and in the process's log lines. The batch
processor's delay is a minute, so the spans arrive only because a graceful shutdown flushes it.
A relay in a process of its own, started after ``serve`` has stopped, joins the same trace
through the outbox row alone.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from confluent_kafka import Consumer

from tests.fixtures import _process
from tests.integration.runtime.helpers import headers, payment_body
from tests.integration.runtime.processes import (
    RuntimeProcess,
    running,
    runtime_env,
    write_jwks,
)

pytestmark = pytest.mark.integration


def _event_message(bootstrap: str, topic: str, payment_id: str, timeout: float):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.key().decode() == payment_id:
                return msg
    finally:
        consumer.close()
    raise AssertionError(f"no event for {payment_id} on {topic}")


def test_one_payment_is_one_trace_from_http_to_kafka(
    dsn, stripe_mock, kafka, otlp_receiver, signer, tmp_path
):
    topic = f"payment.events.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=1)
    port = _process.free_port()
    env = runtime_env(
        dsn,
        stripe_mock.api_base,
        write_jwks(signer, tmp_path),
        port,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic=topic,
        relay_in_process="true",
        relay_poll_interval_seconds="0.2",
        tracing_otlp_endpoint=otlp_receiver.endpoint,
        tracing_service_name="pay-traced",
        revision="rev0123abc",
        log_level="DEBUG",  # the per-request line is at debug
    )
    env["OTEL_BSP_SCHEDULE_DELAY"] = "60000"  # only the shutdown's flush sends them in time
    runtime = RuntimeProcess(["serve"], env, tmp_path / "serve.log", port)
    with running(runtime):
        response = httpx.post(
            f"{runtime.url}/api/v1/payments",
            json=payment_body(),
            headers=headers(signer.token("payment_operator")),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        payment_id = response.json()["id"]
        message = _event_message(kafka.bootstrap_servers, topic, payment_id, timeout=30)
        assert otlp_receiver.spans == []  # still in the batch processor
        runtime.terminate()
        assert runtime.wait(30) == 0, runtime.log()

    spans = otlp_receiver.wait_for(
        lambda found: any(s.kind == "PRODUCER" for s in found), timeout=15
    )
    (server,) = [s for s in spans if s.kind == "SERVER"]
    assert server.name == "POST /api/v1/payments"
    assert server.attributes["http.status_code"] == 201
    assert server.parent_span_id == ""
    trace_id = server.trace_id
    assert {s.trace_id for s in spans} == {trace_id}  # the payment's spans and nothing else
    names = {s.name for s in spans}
    assert {
        "transaction begin_key",  # with the payment row: no "transaction create_payment"
        "transaction finish",
        "stripe create_payment_intent",
        f"send {topic}",
    } <= names, names
    by_id = {s.span_id: s for s in spans}
    for span in spans:  # every span descends from the server span
        node = span
        while node.parent_span_id:
            node = by_id[node.parent_span_id]
        assert node == server, span.name
    (producer,) = [s for s in spans if s.kind == "PRODUCER"]
    assert producer.attributes["messaging.system"] == "kafka"
    assert producer.attributes["messaging.destination.name"] == topic
    assert by_id[producer.parent_span_id].name == "transaction finish"  # where the row was written
    assert server.resource["service.name"] == "pay-traced"
    assert server.resource["service.version"] == "rev0123abc"

    # The Kafka event carries the publish span's traceparent: the consumer joins the trace.
    traceparent = dict(message.headers())["traceparent"].decode()
    version, header_trace, header_span, flags = traceparent.split("-")
    assert (version, header_trace, header_span) == ("00", trace_id, producer.span_id)
    assert int(flags, 16) & 1  # sampled

    # And the process's own log line of the request names the trace.
    text = runtime.log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "payment request"]
    assert [line.get("trace_id") for line in requests] == [trace_id]


def test_a_relay_in_its_own_process_joins_the_payments_trace(
    dsn, stripe_mock, kafka, otlp_receiver, signer, tmp_path
):
    """``payment-runtime relay``, started after ``serve`` has gone: the only link between the
    two processes is the outbox row's stored trace context."""
    topic = f"payment.events.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=1)
    port = _process.free_port()
    tracing_env = {
        "tracing_otlp_endpoint": otlp_receiver.endpoint,
        "tracing_service_name": "pay-traced",
    }
    serve_env = runtime_env(
        dsn,
        stripe_mock.api_base,
        write_jwks(signer, tmp_path),
        port,
        kafka_topic=topic,
        **tracing_env,
    )
    with running(RuntimeProcess(["serve"], serve_env, tmp_path / "serve.log", port)) as runtime:
        response = httpx.post(
            f"{runtime.url}/api/v1/payments",
            json=payment_body(),
            headers=headers(signer.token("payment_operator")),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        payment_id = response.json()["id"]
        runtime.terminate()
        assert runtime.wait(30) == 0, runtime.log()
    spans = otlp_receiver.wait_for(lambda found: any(s.kind == "SERVER" for s in found), 15)
    server = next(s for s in spans if s.kind == "SERVER")
    assert not any(s.kind == "PRODUCER" for s in otlp_receiver.spans)  # nothing published yet

    relay_env = runtime_env(
        dsn,
        stripe_mock.api_base,
        write_jwks(signer, tmp_path),
        port,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic=topic,
        **tracing_env,
    )
    relay = RuntimeProcess(["relay", "--once"], relay_env, tmp_path / "relay.log")
    with running(relay, wait_healthy=False):
        assert relay.wait(60) == 0, relay.log()
    message = _event_message(kafka.bootstrap_servers, topic, payment_id, timeout=30)
    spans = otlp_receiver.wait_for(
        lambda found: any(s.kind == "PRODUCER" for s in found), timeout=15
    )
    (producer,) = [s for s in spans if s.kind == "PRODUCER"]
    assert producer.trace_id == server.trace_id
    (parent,) = [s for s in spans if s.span_id == producer.parent_span_id]
    assert (parent.trace_id, parent.name) == (server.trace_id, "transaction finish")
    _, header_trace, header_span, _ = dict(message.headers())["traceparent"].decode().split("-")
    assert (header_trace, header_span) == (server.trace_id, producer.span_id)
