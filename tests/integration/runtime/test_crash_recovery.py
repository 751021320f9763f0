"""A real crash and a real shutdown of ``payment-runtime serve`` as a subprocess.

The crash: the runtime's Stripe calls go through a recording proxy to stripe-mock. When
the first PaymentIntent-creating call has been answered by stripe-mock, and before the
runtime hears the answer, the proxy SIGKILLs the runtime: Stripe charged, our commit
never happened. A fresh process then gets the client's retry (same Idempotency-Key, same
body) and must finish that payment without a second charge: one payment row, one outbox
event, and every PaymentIntent creation sent with the same Stripe idempotency key (so
real Stripe answers the second with the first's PaymentIntent; stripe-mock is stateless
and cannot deduplicate, so the test checks the keys).

The shutdown: SIGTERM while a request is in flight (the proxy holds Stripe's answer
back for a while); the request still completes and the process exits 0.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.fixtures import _process
from tests.integration.runtime import processes
from tests.integration.runtime.helpers import Signer, headers, payment_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LOCK_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def migrated(postgres) -> str:
    dsn = postgres.new_database(prefix="crash")
    processes.migrate(dsn)
    return dsn


def serve(
    dsn: str, stripe_base: str, signer: Signer, tmp_path: Path, name: str, **settings: Any
) -> processes.RuntimeProcess:
    port = _process.free_port()
    return processes.RuntimeProcess(
        ["serve"],
        processes.runtime_env(
            dsn, stripe_base, processes.write_jwks(signer, tmp_path), port, **settings
        ),
        tmp_path / f"{name}.log",
        port,
    )


def test_killed_between_stripe_call_and_commit_then_retried_charges_once(
    migrated, stripe_mock, signer, tmp_path
):
    dsn = migrated
    first: processes.RuntimeProcess | None = None
    killed = threading.Event()

    def kill_after_first_create(request: processes.ProxiedRequest) -> bool:
        # stripe-mock has processed the call; the runtime dies before it hears back.
        if processes.creates_intent(request) and not killed.is_set():
            assert first is not None
            killed.set()
            first.kill()
            return True
        return False

    token = signer.token("payment_operator")
    key = f"crash-{uuid.uuid4()}"
    body = payment_body(amount=4321, description="crash test")
    settings = {"idempotency_lock_timeout_seconds": LOCK_TIMEOUT_SECONDS}

    with processes.StripeProxy(stripe_mock.api_base, kill_after_first_create) as proxy:
        first = serve(dsn, proxy.url, signer, tmp_path, "first", **settings)
        with processes.running(first):
            with pytest.raises(httpx.TransportError):
                httpx.post(
                    f"{first.url}/api/v1/payments",
                    json=body,
                    headers=headers(token, key),
                    timeout=20,
                )
            assert killed.is_set()
            assert first.wait(10) == -9, first.log()

        # The dead attempt left what a crash at that point leaves: our payment row, the
        # key locked at its recovery point, no PaymentIntent recorded, no event.
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT id, status, stripe_payment_intent_id FROM payments"
            ).fetchall()
            assert len(rows) == 1
            payment_id, status, intent = rows[0]
            assert (status, intent) == ("pending", None)
            assert conn.execute(
                "SELECT recovery_point, locked_at IS NOT NULL, resource_id FROM idempotency_keys"
            ).fetchall() == [("resource_created", True, payment_id)]
            assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)

        second = serve(dsn, proxy.url, signer, tmp_path, "second", **settings)
        with processes.running(second):
            deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS + 15
            while True:
                response = httpx.post(
                    f"{second.url}/api/v1/payments",
                    json=body,
                    headers=headers(token, key),
                    timeout=20,
                )
                if response.status_code != 409 or time.monotonic() > deadline:
                    break
                # The dead attempt's lock has not timed out yet.
                assert response.json()["error"]["code"] == "idempotency_key_in_use"
                time.sleep(0.25)
            assert response.status_code == 201, (response.text, second.log())
            payment = response.json()
            assert payment["id"] == str(payment_id)
            assert payment["amount"] == 4321
            assert payment["stripe_payment_intent"].startswith("pi_")

            # A further retry replays the stored answer without calling Stripe again.
            replay = httpx.post(
                f"{second.url}/api/v1/payments", json=body, headers=headers(token, key), timeout=20
            )
            assert (replay.status_code, replay.json()) == (201, payment)

    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone() == (1,)
        assert conn.execute(
            "SELECT count(*) FROM outbox WHERE message_key = %s", (str(payment_id),)
        ).fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
        assert conn.execute("SELECT recovery_point FROM idempotency_keys").fetchall() == [
            ("finished",)
        ]
    creates = [r for r in proxy.requests if processes.creates_intent(r)]
    # One from the killed attempt, one from the retry: both with the same Stripe key,
    # which real Stripe answers with the first call's PaymentIntent. One charge.
    assert len(creates) == 2, proxy.requests
    assert {r.idempotency_key for r in creates} == {f"paydeck:create_intent:{payment_id}"}


def test_sigterm_lets_the_in_flight_request_finish_then_exits_zero(
    migrated, stripe_mock, signer, tmp_path
):
    dsn = migrated
    stripe_delay = 1.5

    def slow_stripe(request: processes.ProxiedRequest) -> bool:
        if processes.creates_intent(request):
            time.sleep(stripe_delay)
        return False

    token = signer.token("payment_operator")
    result: dict[str, Any] = {}

    def pay() -> None:
        try:
            result["response"] = httpx.post(
                f"{runtime.url}/api/v1/payments",
                json=payment_body(amount=777),
                headers=headers(token),
                timeout=20,
            )
        except Exception as exc:  # reported by the assertions below
            result["error"] = exc

    with processes.StripeProxy(stripe_mock.api_base, slow_stripe) as proxy:
        runtime = serve(dsn, proxy.url, signer, tmp_path, "graceful")
        with processes.running(runtime):
            client = threading.Thread(target=pay)
            client.start()
            proxy.wait_for(processes.creates_intent, timeout=15)
            sent = time.monotonic()
            runtime.terminate()
            client.join(20)
            assert not client.is_alive()
            assert "error" not in result, (result, runtime.log())
            response = result["response"]
            assert response.status_code == 201, (response.text, runtime.log())
            payment = response.json()
            assert payment["stripe_payment_intent"].startswith("pi_")
            assert time.monotonic() - sent >= stripe_delay / 2  # it really was in flight
            assert runtime.wait(20) == 0, runtime.log()
            assert not _process.port_open(runtime.port or 0)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT id::text, status FROM payments").fetchall() == [
            (payment["id"], payment["status"])
        ]
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
