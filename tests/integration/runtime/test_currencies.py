"""JPY, BHD and ISK amounts end to end, exactly: request -> DB -> the Stripe HTTP request ->
response -> outbox event, against PostgreSQL and stripe-mock (through a recording proxy that
keeps every form body Stripe receives); and the reporting-currency metric beside them,
converted, while nothing charged is."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import aiohttp
import psycopg
import pytest
from aiohttp import web

from tests.integration.runtime.helpers import headers, payment_body, running_app, signed_event

pytestmark = pytest.mark.integration

RATES = {"EUR": "1", "JPY": "0.0061", "BHD": "2.44", "ISK": "0.0066"}


class StripeRecorder:
    """A reverse proxy to stripe-mock that records each request's path and form fields."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.api_base = ""
        #: PaymentIntent amounts (Stripe's, as sent) answered with Stripe's minimum-amount error,
        #: as Stripe does when the amount converts to less than its settlement-currency minimum.
        self.too_small: set[str] = set()

    def posted(self, path_prefix: str) -> list[dict[str, str]]:
        return [form for path, form in self.requests if path.startswith(path_prefix)]

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            self.requests.append((request.path, form))
            if request.path == "/v1/payment_intents" and form.get("amount") in self.too_small:
                error = {"type": "invalid_request_error", "code": "amount_too_small",
                         "param": "amount", "message": "Amount must convert to at least 50 cents."}
                return web.json_response({"error": error}, status=400)
        hop = {"host", "content-length", "transfer-encoding", "connection"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                data=body,
                headers={k: v for k, v in request.headers.items() if k.lower() not in hop},
            ) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[StripeRecorder]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_base = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            await runner.cleanup()


def _outbox(dsn: str, payment_id: str) -> list[tuple[str, dict]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event_type, payload FROM outbox WHERE message_key = %s ORDER BY id",
            (payment_id,),
        ).fetchall()
    return [(t, p if isinstance(p, dict) else json.loads(p)) for t, p in rows]


def _payment_row(dsn: str, payment_id: str) -> tuple[int, str]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT amount_minor, currency FROM payments WHERE id = %s", (payment_id,)
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1]).strip()


def _volume(metrics: str, outcome: str) -> float:
    pattern = rf'payment_volume_reporting_total{{currency="EUR",outcome="{outcome}"}} (\S+)'
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize(
    ("amount", "code", "stripe_amount", "display"),
    [(1250, "JPY", "1250", "1250 JPY"), (12340, "BHD", "12340", "12.340 BHD"),
     (5, "ISK", "500", "5 ISK")],
)
def test_amount_goes_through_exactly_and_only_the_metric_is_converted(
    dsn, stripe_mock, signer, tmp_path, amount, code, stripe_amount, display
):
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps(RATES))

    async def scenario() -> tuple[str, str]:
        async with (
            StripeRecorder(stripe_mock.api_base).running() as stripe,
            running_app(dsn, stripe.api_base, signer, reporting_currency="EUR",
                        fx_rates_file=str(rates)) as client,
        ):
            created = await client.post(
                "/api/v1/payments",
                json=payment_body(amount=amount, currency=code),
                headers=headers(signer.token("payment_operator")),
            )
            assert created.status_code == 201, created.text
            payment = created.json()
            assert (payment["amount"], payment["currency"]) == (amount, code)
            assert payment["amount_display"] == display
            (form,) = stripe.posted("/v1/payment_intents")
            assert (form["amount"], form["currency"]) == (stripe_amount, code.lower())
            return payment["id"], (await client.get("/metrics")).text

    payment_id, metrics = asyncio.run(scenario())
    assert _payment_row(dsn, payment_id) == (amount, code)
    ((event_type, event),) = _outbox(dsn, payment_id)
    assert event_type.startswith("payment.")
    assert (event["data"]["amount"], event["data"]["currency"]) == (amount, code)
    # stripe-mock answers a confirmation with "requires_payment_method": our "declined".
    converted = {"JPY": 7.62, "BHD": 30.11, "ISK": 0.03}[code]  # half-even, in EUR
    assert _volume(metrics, "declined") + _volume(metrics, "success") == pytest.approx(converted)


def test_unrepresentable_amounts_are_refused_before_anything_is_written(dsn, stripe_mock, signer):
    async def scenario() -> None:
        async with (
            StripeRecorder(stripe_mock.api_base).running() as stripe,
            running_app(dsn, stripe.api_base, signer) as client,
        ):
            op = signer.token("payment_operator")
            for amount, code, error in [(12345, "BHD", "amount_not_representable"),
                                        (50050, "MGA", "amount_not_representable"),
                                        (1000, "IQD", "currency_not_supported")]:
                refused = await client.post(
                    "/api/v1/payments", json=payment_body(amount=amount, currency=code),
                    headers=headers(op),
                )
                assert refused.status_code == 422, refused.text
                assert refused.json()["error"]["code"] == error
            assert stripe.posted("/v1/") == []

    asyncio.run(scenario())
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 0


def test_bhd_refunds_are_exact_and_an_unrepresentable_one_is_refused(dsn, stripe_mock, signer):
    async def scenario() -> str:
        async with (
            StripeRecorder(stripe_mock.api_base).running() as stripe,
            running_app(dsn, stripe.api_base, signer) as client,
        ):
            op, support = signer.token("payment_operator"), signer.token("payment_support")
            created = await client.post(
                "/api/v1/payments", json=payment_body(amount=12340, currency="BHD"),
                headers=headers(op),
            )
            payment = created.json()
            body, sig = signed_event({
                "id": f"evt_{uuid.uuid4().hex}", "object": "event", "created": int(time.time()),
                "type": "payment_intent.amount_capturable_updated",
                "data": {"object": {"id": payment["stripe_payment_intent"],
                                    "object": "payment_intent",
                                    "metadata": {"payment_id": payment["id"]}}},
            })
            await client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": sig})
            pid = payment["id"]
            captured = await client.post(f"/api/v1/payments/{pid}/capture", headers=headers(op))
            assert captured.status_code == 200, captured.text
            odd = await client.post(f"/api/v1/payments/{pid}/refunds", json={"amount": 1005},
                                    headers=headers(support))
            assert odd.status_code == 422, odd.text
            assert odd.json()["error"]["code"] == "amount_not_representable"
            assert "1.005 BHD" in odd.json()["error"]["message"]
            assert stripe.posted("/v1/refunds") == []
            part = await client.post(f"/api/v1/payments/{pid}/refunds", json={"amount": 1010},
                                     headers=headers(support))
            assert part.status_code == 201, part.text
            rest = await client.post(f"/api/v1/payments/{pid}/refunds", headers=headers(support))
            assert rest.status_code == 201, rest.text
            assert rest.json()["refund"]["amount"] == 11330
            assert [f["amount"] for f in stripe.posted("/v1/refunds")] == ["1010", "11330"]
            return pid

    pid = asyncio.run(scenario())
    events = _outbox(dsn, pid)
    assert events[-1][0] == "payment.refunded"
    assert (events[-1][1]["data"]["amount"], events[-1][1]["data"]["amount_refunded"]) == (
        12340, 12340)
    with psycopg.connect(dsn) as conn:
        refunds = [r[0] for r in conn.execute(
            "SELECT amount_minor FROM refunds WHERE payment_id = %s AND status <> 'failed'"
            " ORDER BY created_at", (pid,))]
    assert refunds == [1010, 11330]


def test_a_new_rate_table_is_picked_up_without_a_restart(dsn, stripe_mock, signer, tmp_path):
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({"JPY": "0.01"}))

    async def scenario() -> tuple[str, str]:
        async with running_app(dsn, stripe_mock.api_base, signer, reporting_currency="EUR",
                               fx_rates_file=str(rates), fx_rates_reload_seconds=0.1) as client:
            op = signer.token("payment_operator")

            async def pay() -> str:
                answer = await client.post("/api/v1/payments",
                                           json=payment_body(amount=1000, currency="JPY"),
                                           headers=headers(op))
                assert answer.status_code == 201, answer.text
                return (await client.get("/metrics")).text

            first = await pay()  # 10.00 EUR
            new = tmp_path / "new.json"
            new.write_text(json.dumps({"JPY": "0.02"}))
            new.replace(rates)  # as the kubelet swaps a ConfigMap's files
            await asyncio.sleep(0.5)
            return first, await pay()  # + 20.00 EUR

    first, second = asyncio.run(scenario())
    total = [_volume(m, "declined") + _volume(m, "success") for m in (first, second)]
    assert total == [pytest.approx(10.0), pytest.approx(30.0)]


def test_stripes_minimum_is_a_422_and_a_replay_is_not_counted_again(
        dsn, stripe_mock, signer, tmp_path):
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps(RATES))

    async def scenario() -> str:
        async with (
            StripeRecorder(stripe_mock.api_base).running() as stripe,
            running_app(dsn, stripe.api_base, signer, reporting_currency="EUR",
                        fx_rates_file=str(rates)) as client,
        ):
            stripe.too_small.add("40")
            op = signer.token("payment_operator")
            small = await client.post("/api/v1/payments", json=payment_body(amount=40),
                                      headers=headers(op))
            assert small.status_code == 422, small.text
            assert small.json()["error"]["code"] == "amount_too_small"
            h = headers(op, f"key-{uuid.uuid4()}")
            first = await client.post("/api/v1/payments", json=payment_body(amount=1000),
                                      headers=h)
            again = await client.post("/api/v1/payments", json=payment_body(amount=1000),
                                      headers=h)
            assert again.headers.get("Idempotent-Replayed") == "true", again.text
            assert again.json() == first.json()
            return (await client.get("/metrics")).text

    metrics = asyncio.run(scenario())
    assert _volume(metrics, "rejected") == pytest.approx(0.40)  # the refused 0.40 EUR
    assert _volume(metrics, "declined") + _volume(metrics, "success") == pytest.approx(10.0)
