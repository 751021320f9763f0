"""The HTTP edge without a database: auth, roles, input errors with codes, OpenAPI."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.testclient import TestClient

from payment_runtime import logs
from payment_runtime.adapters import secrets
from payment_runtime.adapters.secrets import RuntimeSecrets
from payment_runtime.api.app import create_app
from payment_runtime.api.auth import KeySource
from tests.integration.runtime.helpers import Signer, settings_for

pytestmark = pytest.mark.unit
SIGNER = Signer()


@pytest.fixture
def client():
    app = create_app(
        settings_for("http://127.0.0.1:9"),
        RuntimeSecrets("postgresql://x", "sk_test_x", "whsec_x"),
        key_source=KeySource(jwks=SIGNER.jwks),
    )
    return TestClient(app)  # no lifespan: no database; refusals happen before it


def _h(token, key="k-1", ctype="application/json"):
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": key, "Content-Type": ctype}


def _op() -> str:
    """A fresh operator token (made when used: one made at collection time would expire
    before a long suite reaches this module)."""
    return SIGNER.token("payment_operator")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            b'{"amount": 100, "currency": "ABC", "customer": "c", "payment_method": "pm_1"}',
            422,
            "unknown_currency",
        ),
        (
            b'{"amount": -1, "currency": "EUR", "customer": "c", "payment_method": "pm_1"}',
            422,
            "invalid_amount",
        ),
        (
            b'{"amount": 100000000000000000000000, "currency": "EUR", "customer": "c",'
            b' "payment_method": "pm_1"}',
            422,
            "amount_too_large",
        ),
        (
            b'{"amount": 1.5, "currency": "EUR", "customer": "c", "payment_method": "pm_1"}',
            422,
            "validation_error",
        ),
        (
            b'{"amount": 100, "currency": "EUR", "customer": "c",'
            b' "card_number": "4242424242424242", "payment_method": "pm_1"}',
            422,
            "validation_error",
        ),
        (
            b'{"amount": 100, "currency": "EUR", "customer": "c",'
            b' "payment_method": "4242424242424242"}',
            422,
            "validation_error",
        ),
        (b'{"amount": 100,', 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'{"x": "' + b"a" * 70000 + b'"}', 413, "body_too_large"),
        (b"[" * 20000 + b"]" * 20000, 400, "json_too_deep"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, 400, "json_too_deep"),
        (b'{"amount": ' + b"7" * 5000 + b"}", 400, "number_too_large"),
        (b'{"amount": 1e999}', 400, "number_too_large"),
        (b'{"amount": NaN}', 400, "invalid_json"),
        (b'{"\\udc00": 1}', 400, "invalid_json"),
        (
            b'{"amount": 100, "currency": "EUR", "customer": "c", "payment_method": "pm_1",'
            b' "description": "nul \\u0000"}',
            422,
            "validation_error",
        ),
    ],
)
def test_bad_input_has_a_code(client, body, status, code):
    r = client.post("/api/v1/payments", content=body, headers=_h(_op()))
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert "4242424242424242" not in r.text


def test_auth_and_roles(client):
    body = {"amount": 1, "currency": "EUR", "customer": "c", "payment_method": "pm_1"}
    assert client.post("/api/v1/payments", json=body).json()["error"]["code"] == "unauthenticated"
    expired = SIGNER.token("payment_admin", exp=1)
    assert client.post("/api/v1/payments", json=body, headers=_h(expired)).status_code == 401
    wrong_aud = SIGNER.token("payment_admin", aud="someone-else")
    assert client.post("/api/v1/payments", json=body, headers=_h(wrong_aud)).status_code == 401
    other = Signer().token("payment_admin")  # signed by a key not in the JWKS
    assert client.post("/api/v1/payments", json=body, headers=_h(other)).status_code == 401
    viewer = SIGNER.token("payment_viewer")
    r = client.post("/api/v1/payments", json=body, headers=_h(viewer))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    r = client.post("/api/v1/payments", json=body, headers=_h(_op(), key="bad key"))
    assert r.json()["error"]["code"] == "idempotency_key_invalid"
    r = client.get("/api/v1/payments/providers/NL", headers={"Authorization": f"Bearer {viewer}"})
    assert r.json()["payment_methods"][0] == "card"
    r = client.post("/api/v1/payments", json=body, headers=_h(_op(), ctype="text/plain"))
    assert r.status_code == 415


def test_openapi_and_health(client):
    doc = client.get("/openapi.json").json()
    assert "/api/v1/payments/{payment_id}/refunds" in doc["paths"]
    assert doc["components"]["schemas"]["CreatePayment"]["properties"]["amount"]
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health/ready").status_code == 503
    assert "payment_requests_total" in client.get("/metrics").text


def test_redaction_of_fields_and_patterns():
    logs.register_secret("s3cr3t-value-xyz")
    record = logging.makeLogRecord(
        {"msg": "using s3cr3t-value-xyz and Bearer abc.def.ghi", "password": "hunter2", "amount": 5}
    )
    out = json.loads(logs.JsonFormatter().format(record))
    assert "s3cr3t" not in out["message"] and "abc.def" not in out["message"]
    assert out["password"] == logs.REDACTED and out["amount"] == 5


def test_file_env_and_azure_providers(tmp_path):
    (tmp_path / "DATABASE_URL").write_text("postgresql://a:b@c/d\n")
    assert secrets.FileProvider(tmp_path).get("DATABASE_URL") == "postgresql://a:b@c/d"
    with pytest.raises(secrets.SecretNotFound):
        secrets.FileProvider(tmp_path).get("../etc/passwd")
    assert secrets.EnvProvider({"PAYMENT_X": "1", "X": "2"}).get("X") == "1"

    class FakeVault:  # stands in for azure's SecretClient: no emulator in this test bed
        def __init__(self):
            self.asked = []

        def get_secret(self, name):
            from azure.core.exceptions import ResourceNotFoundError

            self.asked.append(name)
            if name != "stripe-api-key":
                raise ResourceNotFoundError("nope")
            return type("S", (), {"value": "sk_test_from_vault"})()

    vault = FakeVault()
    provider = secrets.AzureKeyVaultProvider(vault)
    assert provider.get("STRIPE_API_KEY") == "sk_test_from_vault"
    with pytest.raises(secrets.SecretNotFound):
        provider.get("DATABASE_URL")
    assert vault.asked == ["stripe-api-key", "database-url"]
