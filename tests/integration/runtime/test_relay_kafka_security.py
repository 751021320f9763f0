"""The outbox relay over SASL_SSL, as it runs in a pod: ``payment-runtime relay`` configured
only through its environment (the CA file path, the SCRAM mechanism, the login through the
``env`` secret provider), against the session broker's SASL_SSL listener.

With a wrong password nothing is published: the rows stay in the outbox and the log says why
(librdkafka's authentication error); with the right one every event arrives.  Neither
password ever appears in the relay's log.
"""

from __future__ import annotations

import secrets
import time
import uuid

import pytest

from tests.integration.runtime import processes
from tests.integration.runtime.test_relay_process import make_payments, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def migrated(postgres) -> str:
    dsn = postgres.new_database(prefix="relaysec")
    processes.migrate(dsn)
    return dsn


def _relay(dsn: str, kafka, topic: str, password: str, log) -> processes.RuntimeProcess:
    env = processes.base_env(
        PAYMENT_SECRETS_PROVIDER="env",
        PAYMENT_DATABASE_URL=dsn,
        PAYMENT_KAFKA_BOOTSTRAP_SERVERS=kafka.sasl_ssl_bootstrap_servers,
        PAYMENT_KAFKA_TOPIC=topic,
        PAYMENT_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        PAYMENT_KAFKA_SSL_CA_LOCATION=str(kafka.ca_file),
        PAYMENT_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        PAYMENT_KAFKA_SASL_USERNAME=kafka.sasl_username,
        PAYMENT_KAFKA_SASL_PASSWORD=password,
        PAYMENT_KAFKA_MESSAGE_TIMEOUT_MS="3000",
        PAYMENT_RELAY_POLL_INTERVAL_SECONDS="0.2",
        PAYMENT_LOG_LEVEL="DEBUG",
    )
    return processes.RuntimeProcess(["relay"], env, log)


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_relay_publishes_over_sasl_ssl_only_with_the_right_password(
    migrated, stripe_mock, kafka, signer, tmp_path
):
    dsn = migrated
    topic = f"payment.events.sasl-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=1)
    runtime = serve(dsn, stripe_mock, signer, tmp_path, "serve", kafka_topic=topic)
    with processes.running(runtime):
        ids = make_payments(runtime, signer.token("payment_operator"))
    expected, unpublished = processes.outbox(dsn)
    assert len(expected) == unpublished == len(ids)

    wrong = "wrong-" + secrets.token_hex(8)
    denied = _relay(dsn, kafka, topic, wrong, tmp_path / "denied.log")
    with processes.running(denied, wait_healthy=False):
        assert _wait_for(lambda: "SASL authentication error" in denied.log_file.read_text(), 30), (
            denied.log()
        )
        # Past a whole message timeout (3 s) the batch failed: still nothing published.
        time.sleep(4)
        assert processes.outbox(dsn)[1] == len(ids), denied.log()
        denied.terminate()
        assert denied.wait(20) == 0, denied.log()
    denied_log = denied.log_file.read_text()
    assert '"code": "_AUTHENTICATION"' in denied_log or '"code":"_AUTHENTICATION"' in denied_log
    assert "kafka did not acknowledge every event" in denied_log
    assert wrong not in denied_log
    assert kafka.sasl_password not in denied_log

    allowed = _relay(dsn, kafka, topic, kafka.sasl_password, tmp_path / "allowed.log")
    with processes.running(allowed, wait_healthy=False):
        seen = processes.consume_events(kafka.bootstrap_servers, topic, set(ids), timeout=45)
        assert seen == expected, allowed.log()
        assert _wait_for(lambda: processes.outbox(dsn)[1] == 0, 10), allowed.log()
        allowed.terminate()
        assert allowed.wait(20) == 0, allowed.log()
    allowed_log = allowed.log_file.read_text()
    assert "_AUTHENTICATION" not in allowed_log
    assert kafka.sasl_password not in allowed_log
