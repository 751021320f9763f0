"""The outbox relay as it runs in a pod: ``payment-runtime relay`` as its own process, and
the relay thread inside ``payment-runtime serve`` (``PAYMENT_RELAY_IN_PROCESS=true``).

Payments are made over HTTP against a real ``serve`` process; a Kafka consumer then counts
the distinct event ids on ``payment.events`` for those payments, which must be exactly the
outbox's event ids; on SIGTERM each process stops and exits 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException

from tests.fixtures import _process
from tests.integration.runtime import processes
from tests.integration.runtime.helpers import headers, payment_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TOPIC = "payment.events"
PAYMENTS = 5


@pytest.fixture(scope="module")
def events_topic(kafka) -> str:
    try:
        kafka.create_topic(TOPIC, partitions=3)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return TOPIC


@pytest.fixture
def migrated(postgres) -> str:
    dsn = postgres.new_database(prefix="relay")
    processes.migrate(dsn)
    return dsn


def make_payments(runtime: processes.RuntimeProcess, token: str) -> list[str]:
    ids = []
    for i in range(PAYMENTS):
        response = httpx.post(
            f"{runtime.url}/api/v1/payments",
            json=payment_body(amount=500 + i),
            headers=headers(token),
            timeout=20,
        )
        assert response.status_code == 201, (response.text, runtime.log())
        ids.append(response.json()["id"])
    return ids


def serve(dsn: str, stripe_mock, signer, tmp_path: Path, name: str, **settings: object):
    port = _process.free_port()
    env = processes.runtime_env(
        dsn,
        stripe_mock.api_base,
        processes.write_jwks(signer, tmp_path),
        port,
        **settings,
    )
    return processes.RuntimeProcess(["serve"], env, tmp_path / f"{name}.log", port)


def test_relay_process_publishes_every_outbox_event(
    migrated, stripe_mock, kafka, events_topic, signer, tmp_path
):
    dsn = migrated
    runtime = serve(dsn, stripe_mock, signer, tmp_path, "serve")
    with processes.running(runtime):
        ids = make_payments(runtime, signer.token("payment_operator"))
    expected, unpublished = processes.outbox(dsn)
    assert len(expected) == PAYMENTS and unpublished == PAYMENTS  # no relay ran yet

    relay = processes.RuntimeProcess(
        ["relay"],
        processes.base_env(
            PAYMENT_SECRETS_PROVIDER="env",
            PAYMENT_DATABASE_URL=dsn,
            PAYMENT_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
            PAYMENT_KAFKA_TOPIC=events_topic,
            PAYMENT_RELAY_POLL_INTERVAL_SECONDS="0.2",
        ),
        tmp_path / "relay.log",
    )
    with processes.running(relay, wait_healthy=False):
        seen = processes.consume_events(kafka.bootstrap_servers, TOPIC, set(ids), timeout=45)
        assert seen == expected, relay.log()
        deadline = time.monotonic() + 10
        while processes.outbox(dsn)[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes.outbox(dsn)[1] == 0, relay.log()
        relay.terminate()
        assert relay.wait(20) == 0, relay.log()


def test_in_process_relay_publishes_every_outbox_event(
    migrated, stripe_mock, kafka, events_topic, signer, tmp_path
):
    dsn = migrated
    runtime = serve(
        dsn,
        stripe_mock,
        signer,
        tmp_path,
        "serve-relay",
        relay_in_process="true",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic=events_topic,
        relay_poll_interval_seconds=0.2,
    )
    with processes.running(runtime):
        ids = make_payments(runtime, signer.token("payment_operator"))
        seen = processes.consume_events(kafka.bootstrap_servers, TOPIC, set(ids), timeout=45)
        expected, _ = processes.outbox(dsn)
        assert len(expected) == PAYMENTS
        assert seen == expected, runtime.log()
        deadline = time.monotonic() + 10
        while processes.outbox(dsn)[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes.outbox(dsn)[1] == 0, runtime.log()
        runtime.terminate()
        assert runtime.wait(20) == 0, runtime.log()
