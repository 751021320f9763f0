"""The runtime's Kafka security settings: what is refused, and what librdkafka is given."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError
from pydantic import ValidationError

from payment_runtime.adapters import kafka_relay
from payment_runtime.adapters.secrets import EnvProvider, KafkaSasl, load_kafka_sasl
from payment_runtime.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "values",
    [
        {"kafka_security_protocol": "SASL_SSL"},  # no mechanism
        {"kafka_security_protocol": "SSL", "kafka_sasl_mechanism": "PLAIN"},
        {"kafka_security_protocol": "SSL", "kafka_ssl_certificate_location": "/c.crt"},
        {"kafka_security_protocol": "SSL", "kafka_ssl_key_location": "/c.key"},
        {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"},
    ],
)
def test_impossible_kafka_security_settings_are_refused(values):
    with pytest.raises(ValidationError):
        Settings(**values)


def test_plaintext_asks_the_provider_for_nothing():
    settings = Settings()
    assert load_kafka_sasl(settings, EnvProvider({})) is None
    assert kafka_relay.security_config(settings, None) == {"security.protocol": "PLAINTEXT"}


def test_sasl_ssl_config_names_files_and_the_login():
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_ssl_ca_location="/etc/kafka/ca.crt",
    )
    env = {"PAYMENT_KAFKA_SASL_USERNAME": "u", "PAYMENT_KAFKA_SASL_PASSWORD": "p-secret"}
    sasl = load_kafka_sasl(settings, EnvProvider(env))
    assert sasl == KafkaSasl("u", "p-secret")
    assert "p-secret" not in repr(sasl)
    assert kafka_relay.security_config(settings, sasl) == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/etc/kafka/ca.crt",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p-secret",
    }


def test_a_sasl_protocol_without_credentials_is_an_error_not_plaintext():
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN")
    with pytest.raises(ValueError, match="credentials"):
        kafka_relay.security_config(settings, None)


def test_client_errors_that_need_a_person_are_errors_once_a_minute(caplog, monkeypatch):
    monkeypatch.setattr(kafka_relay, "_last_logged", {})
    caplog.set_level(logging.DEBUG, logger=kafka_relay.log.name)
    auth_error = KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error")
    kafka_relay._on_client_error(auth_error)
    kafka_relay._on_client_error(KafkaError(KafkaError._TRANSPORT, "broker went away"))
    kafka_relay._on_client_error(auth_error)  # librdkafka's retry a moment later
    (auth, transport, repeat) = caplog.records
    assert auth.levelno == logging.ERROR
    assert (auth.code, auth.reason) == ("_AUTHENTICATION", "SASL authentication error")
    assert transport.levelno == logging.DEBUG
    assert repeat.levelno == logging.DEBUG
