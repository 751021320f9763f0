"""Create -> authorize (webhook) -> capture -> refund against PostgreSQL and stripe-mock."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest

from tests.integration.runtime.helpers import (
    CountingGateway,
    headers,
    payment_body,
    running_app,
    signed_event,
)

pytestmark = pytest.mark.integration


def _event(event_type: str, obj: dict, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }


def test_create_capture_refund(dsn, stripe_mock, signer):
    async def scenario():
        counting: list[CountingGateway] = []

        def wrap(inner):
            counting.append(CountingGateway(inner))
            return counting[0]

        async with running_app(dsn, stripe_mock.api_base, signer, gateway=wrap) as client:
            op = signer.token("payment_operator")
            created = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(op)
            )
            assert created.status_code == 201, created.text
            payment = created.json()
            assert payment["amount"] == 1250 and payment["currency"] == "EUR"
            assert payment["stripe_payment_intent"].startswith("pi_")
            # stripe-mock answers every confirmation with its canned status
            # "requires_payment_method" (ours: failed); Stripe then reports the hold by
            # webhook, which moves the payment forward.
            body, sig = signed_event(
                _event(
                    "payment_intent.amount_capturable_updated",
                    {
                        "id": payment["stripe_payment_intent"],
                        "object": "payment_intent",
                        "metadata": {"payment_id": payment["id"]},
                    },
                )
            )
            hook = await client.post(
                "/webhooks/stripe", content=body, headers={"Stripe-Signature": sig}
            )
            assert hook.json()["result"] == "apply"

            pid = payment["id"]
            captured = await client.post(f"/api/v1/payments/{pid}/capture", headers=headers(op))
            assert captured.status_code == 200, captured.text
            assert captured.json()["status"] == "captured"

            # A viewer may not refund; support may.
            denied = await client.post(
                f"/api/v1/payments/{pid}/refunds",
                json={"amount": 250},
                headers=headers(signer.token("payment_viewer")),
            )
            assert denied.status_code == 403
            assert denied.json()["error"]["code"] == "forbidden"
            support = signer.token("payment_support")
            partial = await client.post(
                f"/api/v1/payments/{pid}/refunds", json={"amount": 250}, headers=headers(support)
            )
            assert partial.status_code == 201, partial.text
            assert partial.json()["payment"]["status"] == "partially_refunded"
            assert partial.json()["payment"]["amount_refunded"] == 250
            too_much = await client.post(
                f"/api/v1/payments/{pid}/refunds", json={"amount": 5000}, headers=headers(support)
            )
            assert too_much.status_code == 422
            assert too_much.json()["error"]["code"] == "refund_exceeds_amount"
            rest = await client.post(f"/api/v1/payments/{pid}/refunds", headers=headers(support))
            assert rest.status_code == 201, rest.text
            assert rest.json()["refund"]["amount"] == 1000
            assert rest.json()["payment"]["status"] == "refunded"

            viewer = signer.token("payment_viewer")
            fetched = await client.get(
                f"/api/v1/payments/{pid}", headers={"Authorization": f"Bearer {viewer}"}
            )
            assert fetched.json()["status"] == "refunded"
            assert fetched.json()["amount_refunded"] == 1250

            # Capturing again is refused with a code, not sent to Stripe.
            again = await client.post(f"/api/v1/payments/{pid}/capture", headers=headers(op))
            assert again.status_code == 409
            assert again.json()["error"]["code"] == "invalid_state_transition"

            metrics = (await client.get("/metrics")).text
            assert 'payment_requests_total{operation="capture",outcome="success"} 1.0' in metrics
            assert "stripe_request_duration_seconds_count" in metrics
            assert "outbox_lag_seconds" in metrics
        gw = counting[0]
        assert gw.count("create_intent") == 1 and gw.count("capture") == 1
        assert gw.count("refund") == 2
        return pid

    pid = asyncio.run(scenario())
    with psycopg.connect(dsn) as conn:
        types = [
            r[0]
            for r in conn.execute(
                "SELECT event_type FROM outbox WHERE message_key = %s ORDER BY id", (pid,)
            )
        ]
    assert types == [
        "payment.failed",
        "payment.authorized",
        "payment.captured",
        "payment.partially_refunded",
        "payment.refunded",
    ]


def test_same_key_replays_and_different_body_is_refused(dsn, stripe_mock, signer):
    async def scenario():
        async with running_app(dsn, stripe_mock.api_base, signer) as client:
            h = headers(signer.token("payment_admin"), "key-replay-1")
            first = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            second = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            assert first.status_code == second.status_code == 201
            assert second.json() == first.json()
            assert second.headers.get("idempotent-replayed") == "true"
            other = await client.post("/api/v1/payments", json=payment_body(amount=99), headers=h)
            assert other.status_code == 422
            assert other.json()["error"]["code"] == "idempotency_key_reused"
            # The same key from another client is a different key.
            h2 = headers(signer.token("payment_admin", sub="client-2"), "key-replay-1")
            third = await client.post("/api/v1/payments", json=payment_body(amount=99), headers=h2)
            assert third.status_code == 201
            assert third.json()["id"] != first.json()["id"]

    asyncio.run(scenario())
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 2


def test_200_concurrent_requests_same_key_make_one_payment(dsn, stripe_mock, signer):
    async def scenario():
        gateways: list[CountingGateway] = []

        def wrap(inner):
            gateways.append(CountingGateway(inner))
            return gateways[0]

        async with running_app(
            dsn, stripe_mock.api_base, signer, gateway=wrap, db_pool_max=10
        ) as client:
            h = headers(signer.token("payment_operator"), "one-key-for-all")
            responses = await asyncio.gather(
                *[
                    client.post("/api/v1/payments", json=payment_body(), headers=h)
                    for _ in range(200)
                ]
            )
            codes = [r.status_code for r in responses]
            ok = [r.json()["id"] for r in responses if r.status_code == 201]
            assert set(codes) <= {201, 409}, set(codes)
            assert len(set(ok)) == 1
            for r in responses:
                if r.status_code == 409:
                    assert r.json()["error"]["code"] == "idempotency_key_in_use"
            after = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            assert after.status_code == 201 and after.json()["id"] == ok[0]
        return gateways[0]

    gw = asyncio.run(scenario())
    assert gw.count("create_intent") == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1


def test_crash_between_stripe_and_commit_reuses_the_stripe_key(dsn, stripe_mock, signer):
    async def scenario():
        gateways: list[CountingGateway] = []

        def wrap(inner):
            gateways.append(CountingGateway(inner))
            return gateways[0]

        async with running_app(dsn, stripe_mock.api_base, signer, gateway=wrap) as client:
            h = headers(signer.token("payment_operator"), "crashy-key")
            gateways[0].crash_after_next.add("create_intent")
            crashed = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            assert crashed.status_code == 500
            with psycopg.connect(dsn) as conn:
                row = conn.execute(
                    "SELECT status, stripe_payment_intent_id FROM payments"
                ).fetchone()
                # Stripe was called, our final phase never committed.
                assert row == ("pending", None)
                rp = conn.execute(
                    "SELECT recovery_point, locked_at FROM idempotency_keys"
                ).fetchone()
                assert rp == ("resource_created", None)
            retried = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            assert retried.status_code == 201, retried.text
            return gateways[0], retried.json()

    gw, payment = asyncio.run(scenario())
    keys = [key for op, key in gw.calls if op == "create_intent"]
    assert len(keys) == 2 and keys[0] == keys[1] == f"paydeck:create_intent:{payment['id']}"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 1


def test_stale_lock_of_a_killed_attempt_is_taken_over(dsn, stripe_mock, signer):
    async def scenario():
        async with running_app(
            dsn, stripe_mock.api_base, signer, idempotency_lock_timeout_seconds=5
        ) as client:
            h = headers(signer.token("payment_operator"), "killed-key")
            first = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            assert first.status_code == 201
            with psycopg.connect(dsn) as conn:
                # As if a process died mid-request: locked, not finished.
                conn.execute(
                    "UPDATE idempotency_keys SET locked_at = now(),"
                    " recovery_point = 'resource_created', response_code = NULL"
                )
            busy = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            assert busy.status_code == 409
            with psycopg.connect(dsn) as conn:
                conn.execute("UPDATE idempotency_keys SET locked_at = now() - interval '6 s'")
            resumed = await client.post("/api/v1/payments", json=payment_body(), headers=h)
            assert resumed.status_code == 201
            assert resumed.json()["id"] == first.json()["id"]

    asyncio.run(scenario())
