"""Stripe webhooks: signature on the raw body, tolerance, replay dedupe, no going back."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest

from tests.integration.runtime.helpers import (
    WEBHOOK_SECRET,
    headers,
    payment_body,
    running_app,
    signed_event,
)

pytestmark = pytest.mark.integration


def _event(event_type: str, intent: str, pid: str, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {
            "object": {"id": intent, "object": "payment_intent", "metadata": {"payment_id": pid}}
        },
    }


def test_webhook_signatures_replays_and_ordering(dsn, stripe_mock, signer):
    async def scenario():
        async with running_app(dsn, stripe_mock.api_base, signer) as client:
            created = await client.post(
                "/api/v1/payments",
                json=payment_body(),
                headers=headers(signer.token("payment_operator")),
            )
            payment = created.json()
            pid, intent = payment["id"], payment["stripe_payment_intent"]

            async def send(body: bytes, sig: str):
                return await client.post(
                    "/webhooks/stripe", content=body, headers={"Stripe-Signature": sig}
                )

            succeeded = _event("payment_intent.succeeded", intent, pid, "evt_succeeded_1")
            body, sig = signed_event(succeeded)
            # Tampered: one byte of the body changed after signing.
            tampered = body.replace(b"payment_intent.succeeded", b"payment_intent.canceled")
            r = await send(tampered, sig)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature"
            # Wrong secret.
            _, bad_sig = signed_event(succeeded, secret="whsec_someone_else")
            assert (await send(body, bad_sig)).status_code == 400
            # Stale: signed 10 minutes ago, outside the 300 s tolerance.
            old_body, old_sig = signed_event(succeeded, timestamp=int(time.time()) - 600)
            assert (await send(old_body, old_sig)).status_code == 400
            assert (await client.post("/webhooks/stripe", content=body)).status_code == 400

            ok = await send(body, sig)
            assert ok.status_code == 200 and ok.json()["result"] == "apply"
            replay = await send(body, sig)
            assert replay.status_code == 200 and replay.json()["result"] == "duplicate"

            # Older events arriving late never move the payment backwards.
            for late in (
                "payment_intent.amount_capturable_updated",
                "payment_intent.processing",
                "payment_intent.payment_failed",
                "payment_intent.canceled",
            ):
                lb, ls = signed_event(_event(late, intent, pid))
                assert (await send(lb, ls)).json()["result"] == "stale"
            got = await client.get(
                f"/api/v1/payments/{pid}",
                headers={"Authorization": f"Bearer {signer.token('payment_viewer')}"},
            )
            assert got.json()["status"] == "captured"

            # A refund reported by charge.refunded moves it forward, once.
            charge = {
                "id": "evt_refund_1",
                "object": "event",
                "type": "charge.refunded",
                "created": int(time.time()),
                "data": {
                    "object": {
                        "id": "ch_1",
                        "object": "charge",
                        "payment_intent": intent,
                        "amount": 1250,
                        "amount_refunded": 1250,
                    }
                },
            }
            cb, cs = signed_event(charge)
            assert (await send(cb, cs)).json()["result"] == "apply"
            assert (await send(cb, cs)).json()["result"] == "duplicate"
            return pid

    pid = asyncio.run(scenario())
    assert WEBHOOK_SECRET
    with psycopg.connect(dsn) as conn:
        status, refunded = conn.execute(
            "SELECT status, amount_refunded FROM payments WHERE id = %s", (pid,)
        ).fetchone()
        assert (status, refunded) == ("refunded", 1250)
        assert conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0] == 6


def test_an_event_moves_only_the_payment_it_belongs_to(dsn, stripe_mock, signer):
    """A signed event for another PaymentIntent that names our payment id in its metadata
    (metadata is whatever the creator of that intent wrote) changes nothing; where our
    payment has no intent yet, the event's amount and currency must match it."""
    waiting = uuid.uuid4()  # a payment whose create call has not returned an intent yet
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO payments (id, amount_minor, currency, customer_id, payment_method,"
            " status) VALUES (%s, 4200, 'EUR', 'c', 'pm_card_visa', 'pending')",
            (waiting,),
        )

    def snapshot():
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT id::text, status, amount_refunded, stripe_payment_intent_id"
                " FROM payments ORDER BY id"
            ).fetchall()
            events = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return rows, events

    def intent_event(event_type, intent, pid, **fields):
        event = _event(event_type, intent, pid)
        event["data"]["object"].update(fields)
        return event

    async def scenario():
        async with running_app(dsn, stripe_mock.api_base, signer) as client:
            created = await client.post(
                "/api/v1/payments",
                json=payment_body(),
                headers=headers(signer.token("payment_operator")),
            )
            payment = created.json()
            pid, intent = payment["id"], payment["stripe_payment_intent"]
            assert intent

            async def send(event):
                body, sig = signed_event(event)
                r = await client.post(
                    "/webhooks/stripe", content=body, headers={"Stripe-Signature": sig}
                )
                assert r.status_code == 200, r.text
                return r.json()["result"]

            before = snapshot()
            foreign = [
                # Another intent claiming our (known-intent) payment.
                intent_event("payment_intent.canceled", "pi_someone_else", pid),
                intent_event(
                    "payment_intent.succeeded", "pi_someone_else", pid, amount=1250, currency="eur"
                ),
                {
                    "id": f"evt_{uuid.uuid4().hex}",
                    "type": "charge.refunded",
                    "data": {
                        "object": {
                            "id": "ch_x",
                            "payment_intent": "pi_someone_else",
                            "amount": 1250,
                            "amount_refunded": 1250,
                            "currency": "eur",
                            "metadata": {"payment_id": pid},
                        }
                    },
                },
                # Our payment without an intent: amount or currency differ, or are missing.
                intent_event("payment_intent.succeeded", "pi_new", str(waiting)),
                intent_event(
                    "payment_intent.succeeded", "pi_new", str(waiting), amount=1, currency="eur"
                ),
                intent_event(
                    "payment_intent.succeeded", "pi_new", str(waiting), amount=4200, currency="usd"
                ),
            ]
            for event in foreign:
                assert await send(event) == "mismatch", event
            assert snapshot() == before

            # The payment's own intent still moves it, and an intent-less payment is
            # matched by amount and currency.
            assert await send(_event("payment_intent.succeeded", intent, pid)) == "apply"
            matching = intent_event(
                "payment_intent.amount_capturable_updated",
                "pi_new",
                str(waiting),
                amount=4200,
                currency="eur",
            )
            assert await send(matching) == "apply"
            return pid

    pid = asyncio.run(scenario())
    with psycopg.connect(dsn) as conn:
        rows = dict(
            conn.execute(
                "SELECT id::text, (status, stripe_payment_intent_id) FROM payments"
            ).fetchall()
        )
    assert rows[pid][0] == "captured"
    assert rows[str(waiting)] == ("authorized", "pi_new")
