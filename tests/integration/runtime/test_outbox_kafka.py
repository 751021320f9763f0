"""Kafka down during a burst: every payment succeeds; after Kafka returns, every event
is delivered (counted by a consumer, deduplicated on event id)."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer

from payment_runtime.adapters.kafka_relay import OutboxRelay, drain, make_producer
from payment_runtime.metrics import Metrics
from tests.integration.runtime.helpers import headers, payment_body, running_app

pytestmark = pytest.mark.integration

BURST = 40


def test_kafka_outage_loses_no_event(dsn, stripe_mock, kafka, signer):
    topic = f"payment.events.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=3)
    kafka.stop()
    try:

        async def burst():
            async with running_app(dsn, stripe_mock.api_base, signer, kafka_topic=topic) as c:
                token = signer.token("payment_operator")
                rs = await asyncio.gather(
                    *[
                        c.post(
                            "/api/v1/payments",
                            json=payment_body(amount=100 + i),
                            headers=headers(token),
                        )
                        for i in range(BURST)
                    ]
                )
                return [r.status_code for r in rs], [r.json()["id"] for r in rs]

        codes, ids = asyncio.run(burst())
        assert codes == [201] * BURST
        metrics = Metrics()
        relay = OutboxRelay(
            dsn,
            make_producer(kafka.bootstrap_servers, 2000),
            metrics,
            batch_size=25,
            flush_timeout=5,
        )
        assert relay.relay_once() == 0  # Kafka is down: nothing acknowledged, nothing lost
        assert metrics.outbox_publish_errors._value.get() > 0
        with psycopg.connect(dsn) as conn:
            assert (
                conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
                == BURST
            )
    finally:
        kafka.start()

    relay = OutboxRelay(
        dsn, make_producer(kafka.bootstrap_servers, 30000), Metrics(), batch_size=25
    )
    assert drain(relay, deadline_seconds=90) == BURST
    relay.close()

    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: dict[str, str] = {}
    try:
        for _ in range(120):
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                if len(seen) >= BURST:
                    break
                continue
            payload = json.loads(msg.value())
            assert msg.key().decode() == payload["payment_id"]
            assert dict(msg.headers())["event_id"].decode() == payload["id"]
            seen[payload["id"]] = payload["payment_id"]
    finally:
        consumer.close()
    assert len(seen) == BURST
    assert sorted(seen.values()) == sorted(ids)
