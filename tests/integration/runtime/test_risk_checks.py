"""Velocity limits and per-client rate limits on a real Redis, PostgreSQL and stripe-mock.

- 200 concurrent payments of one customer over a limit of 10: exactly 10 Stripe calls,
  190 refusals ``velocity_limit_exceeded``, and a refused key's retry replays its answer.
- A window slides (a fixed window would admit what it refuses), amounts are per currency.
- Redis killed in the middle of a burst: fail-open lets every payment through and keeps
  readiness; fail-closed refuses with 503 (no Stripe call), fails readiness, and the same
  keys succeed once Redis is back.
- ``RateLimit-*`` headers count down per client subject; the 429 carries ``Retry-After``.
- With both on, a create costs one Redis call; one over the quota is not recorded in any
  velocity window and its key is released, so the same key goes through once the window ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from payment_runtime.metrics import Metrics
from tests.integration.runtime.helpers import CountingGateway, headers, payment_body, running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _limits(*limits: dict[str, Any]) -> list[Any]:
    from payment_runtime.domain.velocity import VelocityLimit

    return [VelocityLimit.model_validate(limit) for limit in limits]


def _counting() -> tuple[list[CountingGateway], Any]:
    gateways: list[CountingGateway] = []

    def wrap(inner: Any) -> CountingGateway:
        gateways.append(CountingGateway(inner))
        return gateways[0]

    return gateways, wrap


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _risk(redis: Any, **overrides: Any) -> dict[str, Any]:
    """running_app settings with risk checks on this test's Redis (the URL as a secret).

    Fail-closed with a long timeout unless a test says otherwise: on this shared machine a
    burst can take longer than the production timeout, and fail-open would then admit
    silently what the test expects refused."""
    return {
        "redis_url": redis.url,
        "db_pool_max": 20,
        "db_pool_timeout_seconds": 60,
        "risk_failure_mode": "closed",
        "redis_timeout_seconds": 5,
        **overrides,
    }


def test_200_concurrent_payments_of_one_customer_over_a_limit_of_10(
    dsn, stripe_mock, signer, redis
):
    metrics = Metrics(CollectorRegistry())

    async def scenario() -> CountingGateway:
        gateways, wrap = _counting()
        limits = _limits({"scope": "customer", "window_seconds": 3600, "max_attempts": 10})
        async with running_app(
            dsn, stripe_mock.api_base, signer, gateway=wrap, metrics=metrics,
            **_risk(redis, velocity_limits=limits),
        ) as client:
            token = signer.token("payment_operator")
            keys = [f"burst-{i}" for i in range(200)]
            responses = await asyncio.gather(
                *[
                    client.post("/api/v1/payments", json=payment_body(), headers=headers(token, k))
                    for k in keys
                ]
            )
            codes = [r.status_code for r in responses]
            assert codes.count(201) == 10, sorted(set(codes))
            assert codes.count(402) == 190, sorted(set(codes))
            refused = [(k, r) for k, r in zip(keys, responses, strict=True) if r.status_code == 402]
            for _, r in refused:
                error = r.json()["error"]
                assert error["code"] == "velocity_limit_exceeded"
                assert error["details"]["scope"] == "customer"
                assert error["details"]["window_seconds"] == 3600
                assert 1 <= error["details"]["retry_after_seconds"] <= 3600
                assert "cust_42" not in r.text
            key, first = refused[0]
            again = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(token, key)
            )
            assert again.status_code == 402
            assert again.json() == first.json()
            assert again.headers["idempotent-replayed"] == "true"
            # An admitted key's retry replays its payment, and is not a new attempt either.
            admitted = keys[codes.index(201)]
            replay = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(token, admitted)
            )
            assert replay.status_code == 201
        return gateways[0]

    gateway = asyncio.run(scenario())
    assert gateway.count("create_intent") == 10
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 10
    with redis.client() as r:
        (window,) = r.keys("paydeck:vel:customer:3600:*")
        assert r.zcard(window) == 10
        assert 0 < r.pttl(window) <= 3600 * 1000
        assert not r.exists(window + b":sum")  # a count-only limit keeps no sums
        # Keys name a hash of the customer id, never the id.
        assert not [k for k in r.keys("*") if b"cust_42" in k]
        assert hashlib.sha256(b"cust_42").hexdigest()[:32].encode() in window
    def outcome(name: str) -> float:
        return _sample(metrics, "payment_requests_total", operation="create", outcome=name)

    # stripe-mock's canned intent status reads as a decline (see test_payments_flow): the
    # 10 payments and the replayed one are success or declined, never refused.
    assert outcome("success") + outcome("declined") == 11
    assert outcome("refused") == 191  # 190 refusals and the replayed one
    assert outcome("rejected") == outcome("error") == 0
    assert _sample(metrics, "velocity_refusals_total", scope="customer") == 190


def test_a_window_slides_and_amounts_count_per_currency(dsn, stripe_mock, signer, redis):
    async def scenario() -> None:
        limits = _limits(
            {"scope": "payment_method", "window_seconds": 2, "max_attempts": 2},
            {"scope": "client", "window_seconds": 3600, "max_amount": {"EUR": 3000}},
        )
        async with running_app(
            dsn, stripe_mock.api_base, signer, **_risk(redis, velocity_limits=limits)
        ) as client:
            token = signer.token("payment_operator")

            async def pay(**body: Any) -> int:
                response = await client.post(
                    "/api/v1/payments", json=payment_body(**{"amount": 100, **body}),
                    headers=headers(token),
                )
                return response.status_code

            start = time.monotonic()
            assert await pay() == 201  # t=0
            await asyncio.sleep(1.0)
            assert await pay() == 201  # t=1
            assert await pay() == 402  # two in the last 2 s
            await asyncio.sleep(max(0.0, start + 2.2 - time.monotonic()))
            # t=2.2: the first left the window, the second is still in it. A fixed window
            # starting at t=0 would have reset and admitted two now.
            assert await pay() == 201
            assert await pay() == 402
            # Another payment method has its own window.
            assert await pay(payment_method="pm_card_mastercard") == 201

            # The client's amount limit: EUR 3000 minor units an hour, other currencies free.
            # 4 x 100 admitted so far.
            assert await pay(payment_method="pm_card_amex", amount=2000) == 201  # 2400
            assert await pay(payment_method="pm_card_discover", amount=800) == 402  # 3200
            assert await pay(payment_method="pm_card_diners", amount=600) == 201  # 3000
            assert await pay(payment_method="pm_card_jcb", amount=5000, currency="USD") == 201

    asyncio.run(scenario())


def test_an_amount_window_slides_too(dsn, stripe_mock, signer, redis):
    async def scenario() -> None:
        limits = _limits({"scope": "customer", "window_seconds": 2, "max_amount": {"EUR": 150}})
        async with running_app(
            dsn, stripe_mock.api_base, signer, **_risk(redis, velocity_limits=limits)
        ) as client:
            token = signer.token("payment_operator")

            async def pay(amount: int, currency: str = "EUR") -> int:
                body = payment_body(amount=amount, customer="cust_amount", currency=currency)
                response = await client.post("/api/v1/payments", json=body, headers=headers(token))
                return response.status_code

            start = time.monotonic()
            assert await pay(100) == 201  # t=0: 100
            await asyncio.sleep(1.0)
            assert await pay(50) == 201  # t=1: 150 (and the window's keys live until t=3)
            assert await pay(10) == 402  # 160 > 150
            await asyncio.sleep(max(0.0, start + 2.2 - time.monotonic()))
            # t=2.2: the first 100 left the window and its sum: 50 + 100 fits again.
            assert await pay(100) == 201
            assert await pay(1) == 402
            assert await pay(500, currency="USD") == 201  # not limited, but summed
            with redis.client() as r:  # at once: the window is short
                (sums,) = r.keys("paydeck:vel:customer:2:a:*:sum")
                assert r.hgetall(sums) == {b"EUR": b"150", b"USD": b"500"}
                assert 0 < r.pttl(sums) <= 2000

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_killed_mid_burst(dsn, stripe_mock, signer, redis, mode):
    metrics = Metrics(CollectorRegistry())

    async def scenario() -> CountingGateway:
        gateways, wrap = _counting()
        limits = _limits({"scope": "customer", "window_seconds": 3600, "max_attempts": 1000})
        async with running_app(
            dsn, stripe_mock.api_base, signer, gateway=wrap, metrics=metrics,
            **_risk(redis, velocity_limits=limits, risk_failure_mode=mode,
                    redis_timeout_seconds=0.2),
        ) as client:
            token = signer.token("payment_operator")
            assert (await client.get("/health/ready")).status_code == 200
            done = 0
            killed, dead = asyncio.Event(), asyncio.Event()

            async def pay(key: str) -> Any:
                nonlocal done
                response = await client.post(
                    "/api/v1/payments", json=payment_body(), headers=headers(token, key)
                )
                done += 1
                if done == 15:
                    killed.set()
                return response

            async def kill() -> None:
                await killed.wait()  # while requests 16-25 are in flight or about to be
                await asyncio.to_thread(redis.stop)
                dead.set()

            keys = [f"{mode}-{i}" for i in range(60)]
            sem = asyncio.Semaphore(5)  # a steady burst

            async def paced(index: int, key: str) -> Any:
                if index >= 25:  # the burst's tail surely meets a dead Redis
                    await dead.wait()
                async with sem:
                    return await pay(key)

            killer = asyncio.create_task(kill())
            responses = await asyncio.gather(*[paced(i, k) for i, k in enumerate(keys)])
            await killer
            ready = await client.get("/health/ready")
            after = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(token, "after-kill")
            )
            codes = [r.status_code for r in responses]
            assert codes.count(201) >= 15
            if mode == "open":
                assert set(codes) == {201}, codes
                assert after.status_code == 201
                assert ready.status_code == 200
            else:
                assert set(codes) <= {201, 503} and 503 in codes, codes
                for r in responses:
                    if r.status_code == 503:
                        assert r.json()["error"]["code"] == "risk_checks_unavailable"
                assert after.status_code == 503
                assert ready.status_code == 503
                assert ready.json()["status"] == "risk_checks_unavailable"
                stripe_before = gateways[0].count("create_intent")
                assert stripe_before == codes.count(201)
                await asyncio.to_thread(redis.start)
                assert (await client.get("/health/ready")).status_code == 200
                for key, r in zip(keys, responses, strict=True):
                    if r.status_code == 503:
                        retried = await client.post(
                            "/api/v1/payments", json=payment_body(), headers=headers(token, key)
                        )
                        assert retried.status_code == 201, retried.text
            return gateways[0]

    gateway = asyncio.run(scenario())
    failures = _sample(metrics, "risk_check_failures_total", check="velocity", failure_mode=mode)
    assert failures >= 1
    assert gateway.count("create_intent") == (61 if mode == "open" else 60)


def test_rate_limit_headers_count_down_per_client(dsn, stripe_mock, signer, redis):
    async def scenario() -> None:
        async with running_app(
            dsn, stripe_mock.api_base, signer,
            **_risk(redis, rate_limit_requests=4, rate_limit_window_seconds=30),
        ) as client:
            alice = signer.token("payment_operator", sub="client-alice")
            bob = signer.token("payment_operator", sub="client-bob")
            seen = []
            first = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(alice)
            )
            assert first.status_code == 201
            seen.append(first)
            payment = first.json()["id"]
            # Another mutating endpoint spends the same quota.
            seen.append(
                await client.post(f"/api/v1/payments/{payment}/capture", headers=headers(alice))
            )
            # A refused request counts too (a bad body is still a request).
            seen.append(
                await client.post(
                    "/api/v1/payments", json={"amount": -1}, headers=headers(alice)
                )
            )
            seen.append(
                await client.post("/api/v1/payments", json=payment_body(), headers=headers(alice))
            )
            # (stripe-mock's payment cannot be captured: 409, still a counted request)
            assert [r.status_code for r in seen] == [201, 409, 422, 201]
            assert [r.headers["ratelimit-limit"] for r in seen] == ["4"] * 4
            assert [r.headers["ratelimit-policy"] for r in seen] == ["4;w=30"] * 4
            assert [r.headers["ratelimit-remaining"] for r in seen] == ["3", "2", "1", "0"]
            resets = [int(r.headers["ratelimit-reset"]) for r in seen]
            assert all(1 <= v <= 30 for v in resets) and resets == sorted(resets, reverse=True)
            assert all("retry-after" not in r.headers for r in seen)

            over = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(alice)
            )
            assert over.status_code == 429
            assert over.json()["error"]["code"] == "rate_limited"
            assert over.headers["ratelimit-remaining"] == "0"
            assert 1 <= int(over.headers["retry-after"]) <= 30
            assert over.headers["retry-after"] == over.headers["ratelimit-reset"]

            # Reads are not limited; another client has its own quota.
            read = await client.get(f"/api/v1/payments/{payment}", headers=headers(alice))
            assert read.status_code == 200 and "ratelimit-limit" not in read.headers
            other = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(bob)
            )
            assert other.status_code == 201
            assert other.headers["ratelimit-remaining"] == "3"

    asyncio.run(scenario())


def test_rate_limit_window_ends(dsn, stripe_mock, signer, redis):
    async def scenario() -> None:
        async with running_app(
            dsn, stripe_mock.api_base, signer,
            **_risk(redis, rate_limit_requests=1, rate_limit_window_seconds=1),
        ) as client:
            token = signer.token("payment_operator", sub=f"client-{uuid.uuid4().hex}")
            ok = await client.post("/api/v1/payments", json=payment_body(), headers=headers(token))
            assert ok.status_code == 201 and ok.headers["ratelimit-reset"] == "1"
            over = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(token)
            )
            assert over.status_code == 429 and over.headers["retry-after"] == "1"
            await asyncio.sleep(1.1)
            again = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(token)
            )
            assert again.status_code == 201 and again.headers["ratelimit-remaining"] == "0"

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_rate_limit_with_redis_down(dsn, stripe_mock, signer, redis, mode, caplog):
    async def scenario() -> None:
        async with running_app(
            dsn, stripe_mock.api_base, signer,
            **_risk(redis, rate_limit_requests=10, risk_failure_mode=mode,
                    redis_timeout_seconds=0.2),
        ) as client:
            token = signer.token("payment_operator")
            first = await client.post(
                "/api/v1/payments", json=payment_body(), headers=headers(token)
            )
            assert first.status_code == 201 and first.headers["ratelimit-remaining"] == "9"
            await asyncio.to_thread(redis.stop)
            down = [
                await client.post("/api/v1/payments", json=payment_body(), headers=headers(token))
                for _ in range(3)
            ]
            read = await client.get(
                f"/api/v1/payments/{first.json()['id']}", headers=headers(token)
            )
            ready = await client.get("/health/ready")
            assert read.status_code == 200  # reads are never rate limited
            for response in down:
                assert "ratelimit-limit" not in response.headers
                if mode == "open":
                    assert response.status_code == 201
                else:
                    assert response.status_code == 503
                    assert response.json()["error"]["code"] == "risk_checks_unavailable"
            assert ready.status_code == (200 if mode == "open" else 503)

    with caplog.at_level("INFO"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.getMessage() == "risk checks cannot reach Redis"]
    assert len(warnings) == 1  # once per outage, not once per request
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert redis.password not in text


def _evalsha_calls(redis: Any) -> int:
    with redis.client() as r:
        return int(r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_with_both_checks_a_create_is_one_redis_call_and_over_the_quota_is_not_recorded(
    dsn, stripe_mock, signer, redis
):
    gateways, wrap = _counting()
    limits = _limits(
        {"scope": "customer", "window_seconds": 60, "max_attempts": 100},
        {"scope": "payment_method", "window_seconds": 60, "max_amount": {"EUR": 10**9}},
    )
    customer = f"cust_{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with running_app(
            dsn, stripe_mock.api_base, signer, gateway=wrap,
            **_risk(redis, velocity_limits=limits, rate_limit_requests=3,
                    rate_limit_window_seconds=2),
        ) as client:
            token = signer.token("payment_operator", sub=f"client-{uuid.uuid4().hex}")
            body = payment_body(customer=customer)
            # Warm the script up with another client (EVAL once), then count three creates.
            warm = signer.token("payment_operator", sub=f"client-{uuid.uuid4().hex}")
            warmed = await client.post("/api/v1/payments", json=body, headers=headers(warm))
            assert warmed.status_code == 201
            calls = await asyncio.to_thread(_evalsha_calls, redis)
            created = [
                await client.post("/api/v1/payments", json=body, headers=headers(token))
                for _ in range(3)
            ]
            assert [r.status_code for r in created] == [201] * 3
            assert [r.headers["ratelimit-remaining"] for r in created] == ["2", "1", "0"]
            assert await asyncio.to_thread(_evalsha_calls, redis) - calls == 3
            over = await client.post(
                "/api/v1/payments", json=body, headers=headers(token, "over-the-quota")
            )
            assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
            assert over.headers["retry-after"] == over.headers["ratelimit-reset"]
            # A replay is counted too (it never reaches the screen): also over the quota.
            replay = await client.post(
                "/api/v1/payments", json=body,
                headers=headers(token, created[0].request.headers["idempotency-key"]),
            )
            assert replay.status_code == 429
            who = hashlib.sha256(customer.encode()).hexdigest()[:32]
            window = f"paydeck:vel:customer:60:n:{who}"
            with redis.client() as r:
                assert r.zcard(window) == 4  # the warm-up and three: the refused one never
            await asyncio.sleep(2.1)
            # The key was released, not answered with the 429: it goes through now.
            again = await client.post(
                "/api/v1/payments", json=body, headers=headers(token, "over-the-quota")
            )
            assert again.status_code == 201 and "idempotent-replayed" not in again.headers
            assert again.headers["ratelimit-remaining"] == "2"

    asyncio.run(scenario())
    assert gateways[0].count("create_intent") == 5


def test_the_script_counts_an_attempt_once_and_refuses_without_recording(redis):
    from payment_runtime.adapters.risk import RiskStore
    from payment_runtime.domain import velocity

    limits = tuple(_limits({"scope": "customer", "window_seconds": 60, "max_attempts": 1}))

    def attempt(key: str) -> velocity.Attempt:
        return velocity.Attempt("client-1", key, "cust_once", "pm_card_visa", "EUR", 100)

    async def scenario() -> list[list[int]]:
        store = RiskStore(redis.url, timeout=5, max_connections=2)
        try:
            return [
                await store.velocity(velocity.check("t:", limits, attempt(key)))
                for key in ("k1", "k1", "k2", "k1")
            ]
        finally:
            await store.close()

    first, same_key, other_key, same_again = asyncio.run(scenario())
    assert first == [0, 0] and same_key == [0, 0] and same_again == [0, 0]
    assert other_key[0] == 1 and 0 < other_key[1] <= 60_000
    with redis.client() as r:
        window = velocity.key("t:", limits[0], attempt("k1"))
        assert r.zcard(window) == 1
        assert not r.exists(velocity.sums_key(window))


def _clients(redis: Any, name: str) -> int:
    """Connections Redis has open whose client name is ``name``."""
    with redis.client() as r:
        return sum(1 for c in r.client_list() if c.get("name") == name)


def _named(url: str, name: str) -> str:
    return f"{url}?client_name={name}"


def test_the_store_reconnects_after_a_restart_and_never_opens_more_than_its_maximum(redis):
    """Connections left idle when Redis restarts are noticed before use (no request fails
    on one), its forgotten scripts are loaded again, and 20 concurrent calls share 3."""
    from payment_runtime.adapters.risk import RiskStore

    key_count = 0

    async def burst(store: RiskStore) -> list[list[int]]:
        nonlocal key_count
        key_count += 20
        return await asyncio.gather(
            *(store.count_request(f"t:rl:{i}", 60) for i in range(key_count - 20, key_count))
        )

    async def scenario() -> tuple[list[list[int]], list[list[int]], int, bool]:
        store = RiskStore(_named(redis.url, "bounded"), timeout=5, max_connections=3)
        try:
            before = await burst(store)
            opened = _clients(redis, "bounded")
            await asyncio.to_thread(redis.stop)
            await asyncio.to_thread(redis.start)  # its data and scripts are gone
            after = await burst(store)
            return before, after, opened, await store.ping()
        finally:
            await store.close()

    before, after, opened, ping = asyncio.run(scenario())
    assert opened == 3
    assert [count for count, _ in before] == [1] * 20
    assert [count for count, _ in after] == [1] * 20  # every call answered, none failed
    assert ping
    assert _clients(redis, "bounded") == 0  # closed


def test_a_call_that_timed_out_leaves_no_reply_for_the_next(redis):
    """Redis answers a call after it timed out: that late reply must never be read as the
    next call's: the connection is dropped, and one holding unread data is never reused."""
    from payment_runtime.adapters.risk import RiskStore, RiskStoreUnavailable

    async def scenario() -> tuple[list[int], int]:
        store = RiskStore(redis.url, timeout=0.2, max_connections=1)
        try:
            await store.count_request("t:rl:late", 60)  # connected, script loaded
            with redis.client() as r:
                r.client_pause(600)  # the next command waits 0.6 s: past the timeout
            with pytest.raises(RiskStoreUnavailable):
                await store.count_request("t:rl:late", 60)
            await asyncio.sleep(0.6)  # the pause ends: the late INCR runs (or is dropped)
            answer = await store.count_request("t:rl:late", 60)
            with redis.client() as r:
                return answer, int(r.get("t:rl:late"))
        finally:
            await store.close()

    answer, stored = asyncio.run(scenario())
    assert answer[0] == stored  # its own count, not the timed-out call's
