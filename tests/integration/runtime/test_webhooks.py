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
