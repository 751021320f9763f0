"""No request body, however malformed, makes the real runtime answer 500.

Deep nesting used to raise RecursionError inside the JSON parser, an integer of more than
4300 digits a ValueError, a NUL character reached PostgreSQL, and a field *name* that is
not valid UTF-8 broke the 422 response that echoes it: each was a 500 ``internal_error``.
Each is now a 4xx with a stable code, against a ``payment-runtime serve`` process with
its database and stripe-mock, on every route that reads a body, webhooks included.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
import stripe

from tests.fixtures import _process
from tests.integration.runtime import processes
from tests.integration.runtime.helpers import WEBHOOK_SECRET, headers, payment_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PAYMENT = (
    b'{"amount": %s, "currency": "EUR", "customer": "c", "payment_method": "pm_card_visa"%s}'
)
DEEP_ARRAYS = b"[" * 30_000 + b"]" * 30_000  # under the 64 KiB body limit
DEEP_OBJECTS = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
#: Below Python's recursion limit, above the runtime's nesting limit.
NESTED_EXTRA = PAYMENT % (b"100", b', "extra": ' + b"[" * 200 + b"]" * 200)
HUGE = b"9" * 5_000

#: (body, status, code) for POST /api/v1/payments.
PAYMENT_CASES = [
    (DEEP_ARRAYS, 400, "json_too_deep"),
    (DEEP_OBJECTS, 400, "json_too_deep"),
    (NESTED_EXTRA, 400, "json_too_deep"),
    (PAYMENT % (HUGE, b""), 400, "number_too_large"),
    (PAYMENT % (b"-" + HUGE, b""), 400, "number_too_large"),
    (PAYMENT % (b"1" * 100, b""), 400, "number_too_large"),
    (PAYMENT % (b"100", b', "x": ' + HUGE), 400, "number_too_large"),
    (PAYMENT % (b"NaN", b""), 400, "invalid_json"),
    (PAYMENT % (b"-Infinity", b""), 400, "invalid_json"),
    (PAYMENT % (b"100", b', "\\ud800": 1'), 400, "invalid_json"),
    (PAYMENT % (b"100", b', "description": "\\udfff"'), 400, "invalid_json"),
    (PAYMENT % (b"100", b', "description": "a\\u0000b"'), 422, "validation_error"),
    (PAYMENT % (b"100", b', "description": "bell\\u0007"'), 422, "validation_error"),
]


@pytest.fixture(scope="module")
def runtime(postgres, stripe_mock, signer, tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad-input")
    dsn = postgres.new_database(prefix="bad")
    processes.migrate(dsn)
    port = _process.free_port()
    env = processes.runtime_env(
        dsn, stripe_mock.api_base, processes.write_jwks(signer, directory), port
    )
    process = processes.RuntimeProcess(["serve"], env, directory / "serve.log", port)
    with processes.running(process):
        yield process


def _post(runtime, route: str, body: bytes, h: dict[str, str]) -> tuple[httpx.Response, str]:
    """The response, and what the runtime logged while answering it."""
    before = runtime.log_file.stat().st_size
    response = httpx.post(f"{runtime.url}{route}", content=body, headers=h, timeout=20)
    with runtime.log_file.open("rb") as log:
        log.seek(before)
        return response, log.read().decode(errors="replace")


def _assert_refused(answer: tuple[httpx.Response, str], status: int, code: str) -> None:
    response, logged = answer
    assert (response.status_code, response.text[:200]) == (status, response.text[:200]), logged
    assert response.json()["error"]["code"] == code
    assert "unhandled error" not in logged


@pytest.mark.parametrize(
    ("body", "status", "code"), PAYMENT_CASES, ids=lambda v: None if isinstance(v, bytes) else v
)
def test_create_payment_refuses_bad_input_with_a_code(runtime, signer, body, status, code):
    h = {**headers(signer.token("payment_operator")), "Content-Type": "application/json"}
    _assert_refused(_post(runtime, "/api/v1/payments", body, h), status, code)


def test_refund_capture_and_cancel_refuse_deep_and_huge_bodies(runtime, signer):
    token = signer.token("payment_admin")
    created = httpx.post(
        f"{runtime.url}/api/v1/payments",
        json=payment_body(),
        headers=headers(token),
        timeout=20,
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    routes = [f"/api/v1/payments/{pid}/{r}" for r in ("refunds", "capture", "cancel")]
    routes.append(f"/api/v1/payments/{uuid.uuid4()}/capture")
    for route in routes:
        for body, code in (
            (DEEP_ARRAYS, "json_too_deep"),
            (b'{"amount": ' + HUGE + b"}", "number_too_large"),
        ):
            h = {**headers(token), "Content-Type": "application/json"}
            _assert_refused(_post(runtime, route, body, h), 400, code)


def _signed(body: bytes) -> dict[str, str]:
    ts = int(time.time())
    sig = stripe.WebhookSignature._compute_signature(f"{ts}.{body.decode()}", WEBHOOK_SECRET)
    return {"Stripe-Signature": f"t={ts},v1={sig}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (DEEP_ARRAYS, "json_too_deep"),
        (b'{"id": "evt_1", "data": ' + b"[" * 200 + b"]" * 200 + b"}", "json_too_deep"),
        (b'{"id": "evt_2", "created": ' + HUGE + b"}", "number_too_large"),
        (b'["evt_3"]', "invalid_event"),
        (b'{"id": "evt_4", "type": "payment_intent.succeeded", "data": []}', "invalid_event"),
        (b'{"id": "evt_5", "type": "payment_intent.succeeded", "data": {"object": 7}}',
         "invalid_event"),
        (b'{"id": ["evt_6"], "type": "payment_intent.succeeded"}', "invalid_event"),
    ],
    ids=["deep", "nested-data", "huge-int", "list", "data-list", "object-int", "id-list"],
)
def test_a_signed_webhook_with_bad_json_is_refused_with_a_code(runtime, body, code):
    _assert_refused(_post(runtime, "/webhooks/stripe", body, _signed(body)), 400, code)


def test_the_refusals_leave_the_database_alone(runtime, signer):
    # A well-formed payment still goes through after all of the above.
    response = httpx.post(
        f"{runtime.url}/api/v1/payments",
        json=payment_body(description="ok"),
        headers=headers(signer.token("payment_operator")),
        timeout=20,
    )
    assert response.status_code == 201, response.text
    assert json.loads(response.text)["description"] == "ok"
