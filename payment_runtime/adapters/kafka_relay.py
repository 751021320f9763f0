"""The outbox relay: publishes committed outbox rows to Kafka, at least once.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` (several relays can run), produced with
confluent-kafka's idempotent producer (``acks=all``), keyed by payment id with the event
id in a header and the payload, and marked published only after Kafka acknowledged
them. If Kafka is down nothing is marked, the transaction rolls back, and the rows wait:
payments never depend on Kafka.

A row stored with its request's trace context gets a producer span parented on it (ended
when Kafka answers) and its ``traceparent``/``tracestate`` headers, so a consumer joins the
payment's trace; with tracing off the stored headers are forwarded as they are.

TLS and SASL come from the settings (:func:`security_config`): file paths of the CA and
client certificate, and the SASL credentials the secret provider returned.  A client error
such as a refused login is logged with librdkafka's reason, which never holds the password.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Message, Producer
from opentelemetry.trace import Span

from payment_runtime import tracing
from payment_runtime.adapters.secrets import KafkaSasl
from payment_runtime.metrics import Metrics
from payment_runtime.settings import Settings

log = logging.getLogger(__name__)

#: Client errors that need someone to act (credentials, certificates, settings): logged as
#: errors; the others (a broker away, a reconnect) are librdkafka's to retry, logged at debug.
_ACTIONABLE = frozenset({
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError._INVALID_ARG,
    KafkaError._UNSUPPORTED_FEATURE,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
})


def security_config(settings: Settings, sasl: KafkaSasl | None) -> dict[str, str]:
    """librdkafka's security settings: protocol, TLS file paths, SASL mechanism and login."""
    out: dict[str, str] = {"security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.endswith("SSL"):
        files = {
            "ssl.ca.location": settings.kafka_ssl_ca_location,
            "ssl.certificate.location": settings.kafka_ssl_certificate_location,
            "ssl.key.location": settings.kafka_ssl_key_location,
        }
        out.update({k: v for k, v in files.items() if v is not None})
    if settings.kafka_security_protocol.startswith("SASL_"):
        if sasl is None or settings.kafka_sasl_mechanism is None:
            raise ValueError("a SASL protocol needs a mechanism and credentials")
        out["sasl.mechanism"] = settings.kafka_sasl_mechanism
        out["sasl.username"] = sasl.username
        out["sasl.password"] = sasl.password
    return out


#: An actionable error is logged as an error once per this many seconds per code (librdkafka
#: retries a refused login every few hundred milliseconds); the repeats go to debug.
ERROR_LOG_INTERVAL_SECONDS = 60.0
_last_logged: dict[int, float] = {}


def _on_client_error(err: KafkaError) -> None:
    """librdkafka's error callback: the code and reason, never the configuration."""
    level = logging.DEBUG
    if err.fatal() or err.code() in _ACTIONABLE:
        now = time.monotonic()
        last = _last_logged.get(err.code())
        if last is None or now - last >= ERROR_LOG_INTERVAL_SECONDS:
            _last_logged[err.code()] = now
            level = logging.ERROR
    log.log(level, "kafka client error", extra={"code": err.name(), "reason": err.str()})


def make_producer(
    bootstrap_servers: str, message_timeout_ms: int, security: Mapping[str, str] | None = None
) -> Producer:
    """An idempotent producer: no duplicates or reordering from its own retries.

    ``security`` is :func:`security_config`'s output (PLAINTEXT without it).
    """
    return Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": message_timeout_ms,
            "linger.ms": 5,
            "client.id": "payment-runtime-relay",
            "logger": logging.getLogger("payment_runtime.kafka"),
            "error_cb": _on_client_error,
            **(security or {}),
        }
    )


class OutboxRelay:
    """Moves outbox rows to Kafka in batches."""

    def __init__(
        self,
        dsn: str,
        producer: Producer,
        metrics: Metrics,
        *,
        batch_size: int = 200,
        flush_timeout: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_timeout = flush_timeout
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn)
        return self._conn

    def relay_once(self) -> int:
        """Publish one batch; returns how many events Kafka acknowledged."""
        conn = self._connection()
        try:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT id, event_id, topic, message_key, payload, trace_context FROM outbox"
                    " WHERE published_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (self._batch_size,),
                ).fetchall()
                delivered: list[int] = []
                failed: list[KafkaError] = []
                spans: dict[int, Span] = {}

                def on_delivery(err: KafkaError | None, msg: Message, *, row_id: int) -> None:
                    if err is None:
                        delivered.append(row_id)
                    else:
                        failed.append(err)
                    span = spans.pop(row_id, None)
                    if span is not None:
                        tracing.end_publish(span, None if err is None else err.name())

                for row_id, event_id, topic, key, payload, trace_context in rows:
                    span, trace_headers = tracing.publish_span(
                        topic,
                        {"messaging.message.id": str(event_id)},
                        trace_context,
                    )
                    if span.is_recording():
                        spans[row_id] = span
                    self._producer.produce(
                        topic,
                        key=str(key).encode(),
                        value=json.dumps(payload, separators=(",", ":")).encode(),
                        headers={
                            "event_id": str(event_id).encode(),
                            **{k: v.encode() for k, v in trace_headers.items()},
                        },
                        on_delivery=functools.partial(on_delivery, row_id=row_id),
                    )
                    self._producer.poll(0)
                if rows:
                    self._producer.flush(self._flush_timeout)
                for span in spans.values():  # no answer within the flush timeout
                    tracing.end_publish(span, "timeout")
                if delivered:
                    conn.execute(
                        "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)", (delivered,)
                    )
                if len(delivered) < len(rows):
                    self._metrics.outbox_publish_errors.inc(len(rows) - len(delivered))
                    log.warning(
                        "kafka did not acknowledge every event",
                        extra={"pending": len(rows) - len(delivered), "error": str(failed[:1])},
                    )
                self._metrics.outbox_published.inc(len(delivered))
            self._update_lag(conn)
            return len(delivered)
        except psycopg.OperationalError:
            self._conn = None
            raise

    def _update_lag(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
            " FROM outbox WHERE published_at IS NULL"
        ).fetchone()
        if row:
            self._metrics.outbox_pending.set(int(row[0]))
            self._metrics.outbox_lag.set(float(row[1]))
        conn.commit()

    def run(self, stop: threading.Event, poll_interval: float = 0.5) -> None:
        """Relay until ``stop`` is set; errors back off and retry, never crash the loop."""
        backoff = poll_interval
        while not stop.is_set():
            try:
                sent = self.relay_once()
                backoff = poll_interval
                if sent:
                    continue  # more may be waiting
            except Exception:
                log.exception("outbox relay iteration failed")
                backoff = min(backoff * 2, 10.0)
            stop.wait(backoff)
        self.close()

    def close(self) -> None:
        self._producer.flush(5)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def drain(relay: OutboxRelay, deadline_seconds: float) -> int:
    """Relay until the outbox is empty or the deadline passes (tests, the CLI ``--once``)."""
    total = 0
    end = time.monotonic() + deadline_seconds
    while time.monotonic() < end:
        sent = relay.relay_once()
        total += sent
        if sent == 0:
            conn = relay._connection()
            row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
            conn.commit()
            if row and int(row[0]) == 0:
                break
            time.sleep(0.2)
    return total
