"""topicProvisioner admin over SASL_SSL: the operator's own admin client, configured as the
chart configures it (``PAYDECK_KAFKA_ADMIN_*`` settings naming the CA file and the files the
operator's pod mounts from its login Secret), against the session broker's SASL_SSL listener.

With the right login a topic is created (read back over PLAINTEXT); with a wrong password the
reconcile reports the cluster as not answering with librdkafka's reason (the refused login),
creates nothing, and the password appears neither in the report nor in any log line. When the
login file is then rotated to the right password, the same clients log in on the next call.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient
from payment_operator.rollout import gates
from payment_operator.rollout.topics import WantedTopic
from payment_operator.settings import Settings
from payment_operator.state import kafka_admin_security
from payment_operator.topics import AdminClients

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TIMEOUT = 5.0


def _settings(kafka, directory: Path, password: str, monkeypatch) -> Settings:
    """The settings the chart's deployment gives the operator, with the login as files."""
    directory.mkdir()
    username_file, password_file = directory / "username", directory / "password"
    username_file.write_text(kafka.sasl_username + "\n")
    password_file.write_text(password)
    for path in (username_file, password_file):
        path.chmod(0o400)
    env = {
        "PAYDECK_KAFKA_ADMIN_SECURITY_PROTOCOL": "SASL_SSL",
        "PAYDECK_KAFKA_ADMIN_SSL_CA_LOCATION": str(kafka.ca_file),
        "PAYDECK_KAFKA_ADMIN_SASL_MECHANISM": "SCRAM-SHA-512",
        "PAYDECK_KAFKA_ADMIN_SASL_USERNAME_FILE": str(username_file),
        "PAYDECK_KAFKA_ADMIN_SASL_PASSWORD_FILE": str(password_file),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def _exists(kafka, topic: str) -> bool:
    own = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    try:
        own.describe_topics(TopicCollection([topic]), request_timeout=10)[topic].result(15)
    except Exception:
        return False
    return True


def test_the_admin_client_creates_topics_over_sasl_ssl(kafka, tmp_path, monkeypatch):
    settings = _settings(kafka, tmp_path / "login", kafka.sasl_password, monkeypatch)
    clients = AdminClients(settings.kafka_admin_timeout_seconds,
                           security=kafka_admin_security(settings))
    topic = f"paydeck.test.sasl.{uuid.uuid4().hex[:8]}"
    try:
        report = clients.reconcile(kafka.sasl_ssl_bootstrap_servers, [WantedTopic(topic, 2, 1)])
    finally:
        clients.close()
    assert not report.unreachable and not report.failures, report
    assert gates.admin_topics_gate(report).open
    assert _exists(kafka, topic)


def test_a_wrong_password_creates_nothing_and_is_never_shown(
    kafka, tmp_path, monkeypatch, caplog, capfd
):
    wrong = "wrong-" + uuid.uuid4().hex
    settings = _settings(kafka, tmp_path / "login", wrong, monkeypatch)
    caplog.set_level(logging.DEBUG)
    clients = AdminClients(TIMEOUT, security=kafka_admin_security(settings))
    topic = f"paydeck.test.denied.{uuid.uuid4().hex[:8]}"
    try:
        report = clients.reconcile(kafka.sasl_ssl_bootstrap_servers, [WantedTopic(topic, 1, 1)])
    finally:
        clients.close()
    assert "SASL authentication error" in report.unreachable, report
    gate = gates.admin_topics_gate(report)
    assert not gate.open
    assert not _exists(kafka, topic)
    captured = capfd.readouterr()
    shown = "\n".join([repr(report), gate.message, caplog.text, captured.out, captured.err])
    assert "SASL authentication error" in gate.message  # what TopicsReady says
    assert wrong not in shown
    assert kafka.sasl_password not in shown


def test_a_rotated_password_file_logs_in_without_a_restart(kafka, tmp_path, monkeypatch):
    settings = _settings(kafka, tmp_path / "login", "stale-" + uuid.uuid4().hex, monkeypatch)
    clients = AdminClients(TIMEOUT, security=kafka_admin_security(settings))
    topic = f"paydeck.test.rotated.{uuid.uuid4().hex[:8]}"
    try:
        refused = clients.reconcile(kafka.sasl_ssl_bootstrap_servers, [WantedTopic(topic, 1, 1)])
        assert "SASL authentication error" in refused.unreachable, refused
        password_file = Path(settings.kafka_admin_sasl_password_file)
        password_file.unlink()  # a Secret volume update replaces the file
        password_file.write_text(kafka.sasl_password)
        report = clients.reconcile(kafka.sasl_ssl_bootstrap_servers, [WantedTopic(topic, 1, 1)])
    finally:
        clients.close()
    assert not report.unreachable and not report.failures, report
    assert _exists(kafka, topic)
