"""Smoke tests proving each service fixture is the real thing, reached over the network.

A row goes into PostgreSQL and comes back; a message goes through a Kafka topic, also across
a broker restart; stripe-mock answers the official ``stripe`` SDK; moto stores a secret.  The
teardown the fixtures run leaves no process group and no directory behind.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import psycopg
import pytest
import stripe
from confluent_kafka import Consumer, KafkaException, Producer

from tests.fixtures.kafka import start_kafka
from tests.fixtures.postgres import start_postgres
from tests.fixtures.stripe_mock import start_stripe_mock

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, key: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[object] = []
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(60) == 0, "message not delivered within 60s"
    assert errors == [None]


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 60.0) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"smoke-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            values.append(message.value())
    finally:
        consumer.close()
    return values


def test_postgres_round_trips_a_row(postgres) -> None:
    dsn = postgres.new_database("smoke")
    assert dsn != postgres.dsn()
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE payments (id text PRIMARY KEY, amount bigint NOT NULL)")
        conn.execute("INSERT INTO payments VALUES (%s, %s)", ("pay_1", 2500))
        conn.commit()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id, amount FROM payments").fetchall()
        version = conn.execute("SHOW server_version").fetchone()
    assert rows == [("pay_1", 2500)]
    assert version is not None and version[0]
    # A second database is really separate: the table is not there.
    with psycopg.connect(postgres.new_database()) as conn:
        missing = conn.execute("SELECT to_regclass('payments')").fetchone()
    assert missing == (None,)


def test_kafka_round_trips_a_message(kafka) -> None:
    topic = f"smoke.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=3)
    _produce(kafka.bootstrap_servers, topic, "pay_1", b"payment.succeeded")
    assert _consume(kafka.bootstrap_servers, topic, 1) == [b"payment.succeeded"]


def test_kafka_survives_stop_and_start(kafka) -> None:
    topic = f"smoke.restart.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic)
    _produce(kafka.bootstrap_servers, topic, "before", b"before-restart")
    bootstrap = kafka.bootstrap_servers
    kafka.stop()
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 2000})
        failures: list[object] = []
        producer.produce(topic, value=b"lost", on_delivery=lambda e, _m: failures.append(e))
        assert producer.flush(30) == 0
        assert failures and failures[0] is not None, "a stopped broker accepted a message"
    finally:
        kafka.start()
    assert kafka.bootstrap_servers == bootstrap
    _produce(kafka.bootstrap_servers, topic, "after", b"after-restart")
    values = _consume(kafka.bootstrap_servers, topic, 2)
    assert values == [b"before-restart", b"after-restart"]


def test_stripe_sdk_creates_a_payment_intent(stripe_mock) -> None:
    client = stripe.StripeClient(
        "sk_test_123", base_addresses={"api": stripe_mock.api_base}, max_network_retries=0
    )
    intent = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "metadata": {"order": "o-1"}}
    )
    assert intent.id.startswith("pi_")
    assert intent.amount == 2000
    assert intent.currency == "usd"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={"currency": "usd"})  # type: ignore[typeddict-item]


def test_moto_stores_and_returns_a_secret(moto_server) -> None:
    client = boto3.client("secretsmanager", **moto_server.client_kwargs())
    name = f"payment-database-url-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=name, SecretString="postgresql://pay@db/pay")
    assert client.get_secret_value(SecretId=name)["SecretString"] == "postgresql://pay@db/pay"
    assert moto_server.endpoint_url.startswith("http://127.0.0.1:")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_secret_value(SecretId=f"{name}-missing")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    "start",
    [start_postgres, start_kafka, start_stripe_mock],
    ids=["postgres", "kafka", "stripe-mock"],
)
def test_teardown_leaves_no_process_or_directory(start: Callable[[], Any]) -> None:
    server = start()
    pid, workdir = server.pid, server.workdir
    try:
        assert pid is not None and _group_alive(pid)
        assert workdir.is_dir()
    finally:
        server.close()
    assert not _group_alive(pid), f"process group {pid} outlived close()"
    assert not workdir.exists(), f"{workdir} outlived close()"
