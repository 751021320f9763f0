"""The chart's kafkaAdmin values: how the operator's own Kafka admin client gets its TLS and
SASL material (Secrets the platform team names, mounted into the operator's pod), and that the
settings the deployment sets are exactly the files it mounts."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
from payment_operator.settings import Settings
from payment_operator.state import kafka_admin_security

from tests.unit.packaging import bundle as b

pytestmark = pytest.mark.unit

SECURE = {
    "kafkaAdmin": {
        "securityProtocol": "SASL_SSL",
        "tls": {"secretName": "kafka-admin-ca", "clientCertificate": True},
        "sasl": {"mechanism": "SCRAM-SHA-256", "secretName": "kafka-admin-login"},
    }
}


def _pod(values: dict[str, Any] | None) -> dict[str, Any]:
    deployment = b.one(b.rendered(values), "Deployment")
    return deployment["spec"]["template"]["spec"]


def _env(pod: dict[str, Any]) -> dict[str, str]:
    (container,) = pod["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _mounted_files(pod: dict[str, Any]) -> dict[str, tuple[str, str, int]]:
    """Path in the container -> (Secret, key, mode) of every file of a mounted Secret volume."""
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    files = {}
    for volume in pod["volumes"]:
        secret = volume.get("secret")
        if secret is None:
            continue
        mount = mounts[volume["name"]]
        assert mount["readOnly"] is True
        for item in secret["items"]:
            path = str(PurePosixPath(mount["mountPath"]) / item["path"])
            files[path] = (secret["secretName"], item["key"], secret["defaultMode"])
    return files


def test_by_default_the_admin_client_speaks_plaintext_and_nothing_is_mounted():
    pod = _pod(None)
    assert not [n for n in _env(pod) if n.startswith("PAYDECK_KAFKA_ADMIN_")]
    assert _mounted_files(pod) == {}


def test_the_settings_name_exactly_the_mounted_secret_keys(monkeypatch):
    pod = _pod(SECURE)
    env = {k: v for k, v in _env(pod).items() if k.startswith("PAYDECK_KAFKA_ADMIN_")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    security = kafka_admin_security(Settings())
    assert (security.protocol, security.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    files = _mounted_files(pod)
    assert files == {
        security.ca_location: ("kafka-admin-ca", "ca.crt", 0o440),
        security.certificate_location: ("kafka-admin-ca", "tls.crt", 0o440),
        security.key_location: ("kafka-admin-ca", "tls.key", 0o440),
        security.sasl_username_file: ("kafka-admin-login", "username", 0o440),
        security.sasl_password_file: ("kafka-admin-login", "password", 0o440),
    }


@pytest.mark.parametrize(
    ("kafka_admin", "error"),
    [
        ({"securityProtocol": "SSL"}, "needs kafkaAdmin.tls.secretName"),
        ({"securityProtocol": "SASL_PLAINTEXT"}, "needs kafkaAdmin.sasl.secretName"),
        ({"tls": {"secretName": "ca"}}, "kafkaAdmin.tls is only used"),
        (
            {"securityProtocol": "SSL", "tls": {"secretName": "ca"},
             "sasl": {"secretName": "login"}},
            "kafkaAdmin.sasl is only used",
        ),
        ({"securityProtocol": "SASL"}, "securityProtocol"),
    ],
)
def test_values_the_admin_client_could_not_honour_are_refused(kafka_admin, error):
    result = b.render({"kafkaAdmin": kafka_admin}, check=False)
    assert result.returncode != 0
    assert error in result.stderr
