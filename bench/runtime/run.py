# ruff: noqa: E501, SIM115
"""Benchmark POST /api/v1/payments on a real uvicorn server against pgbench.

Starts PostgreSQL and stripe-mock (the test fixtures' helpers), migrates a database,
runs ``payment-runtime serve`` in a subprocess, drives it with concurrent httpx clients
for a fixed time, then runs ``pgbench`` for the same time on the same PostgreSQL with
the SQL transaction a payment performs (key insert, payment insert, recovery point,
final update + outbox row + stored response). Prints payments/s, p50/p99 latency and the
ratio to pgbench's transactions/s. Bounded: about 2 x DURATION seconds plus start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from payment_runtime import migrations
from tests.fixtures._process import free_port, wait_until
from tests.fixtures.postgres import start_postgres
from tests.fixtures.stripe_mock import start_stripe_mock
from tests.integration.runtime.helpers import AUDIENCE, ISSUER, Signer

DURATION = float(os.environ.get("BENCH_DURATION", "12"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))

PGBENCH_SCRIPT = """
\\set amount random(1, 99999)
BEGIN;
INSERT INTO idempotency_keys (scope, key, request_method, request_path, request_fingerprint, recovery_point, locked_at) VALUES ('bench', gen_random_uuid()::text, 'POST', '/api/v1/payments', md5(random()::text), 'started', now()) ON CONFLICT (scope, key) DO NOTHING RETURNING id \\gset k_
COMMIT;
BEGIN;
INSERT INTO payments (id, amount_minor, currency, customer_id, payment_method, status) VALUES (gen_random_uuid(), :amount, 'EUR', 'cust', 'pm_card_visa', 'pending') RETURNING id AS pid \\gset
UPDATE idempotency_keys SET recovery_point = 'resource_created', resource_id = ':pid' WHERE id = :k_id;
COMMIT;
BEGIN;
SELECT id FROM payments WHERE id = ':pid' FOR UPDATE;
UPDATE payments SET status = 'failed', stripe_payment_intent_id = 'pi_' || md5(random()::text), updated_at = now() WHERE id = ':pid';
INSERT INTO outbox (event_id, topic, message_key, event_type, payload) VALUES (gen_random_uuid(), 'payment.events', ':pid', 'payment.failed', '{}'::jsonb);
UPDATE idempotency_keys SET recovery_point = 'finished', locked_at = NULL, response_code = 201, response_body = '{}'::jsonb WHERE id = :k_id;
COMMIT;
"""


async def _load(base: str, token: str, duration: float) -> tuple[int, int, list[float]]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                started = time.perf_counter()
                r = await client.post(
                    "/api/v1/payments",
                    json={
                        "amount": 1250,
                        "currency": "EUR",
                        "customer": "c1",
                        "payment_method": "pm_card_visa",
                    },
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": str(uuid.uuid4()),
                    },
                )
                if r.status_code == 201:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])
    return len(latencies), errors, latencies


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def main() -> int:
    pg = start_postgres()
    sm = start_stripe_mock()
    server: subprocess.Popen[bytes] | None = None
    work = Path(tempfile.mkdtemp(prefix="paydeck-bench-"))
    try:
        dsn = pg.new_database(prefix="bench")
        migrations.migrate(dsn)
        signer = Signer()
        (work / "jwks.json").write_text(json.dumps(signer.jwks))
        port = free_port()
        env = {
            **os.environ,
            "PAYMENT_DATABASE_URL": dsn,
            "PAYMENT_STRIPE_API_KEY": "sk_test_bench",
            "PAYMENT_STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "PAYMENT_STRIPE_API_BASE": sm.api_base,
            "PAYMENT_JWKS_URL": f"file://{work / 'jwks.json'}",
            "PAYMENT_JWT_ISSUER": ISSUER,
            "PAYMENT_JWT_AUDIENCE": AUDIENCE,
            "PAYMENT_DB_POOL_MAX": "10",
            "PAYMENT_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "payment_runtime.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "server.log", "wb"),
        )
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, what="payment-runtime")
        token = signer.token("payment_operator")
        asyncio.run(_load(base, token, 3))  # warm-up
        count, errors, lat = asyncio.run(_load(base, token, DURATION))
        server.terminate()
        server.wait(30)
        server = None

        (work / "payment.sql").write_text(PGBENCH_SCRIPT)
        out = subprocess.run(
            [
                "pgbench",
                "-n",
                "-f",
                str(work / "payment.sql"),
                "-c",
                str(CONCURRENCY),
                "-j",
                "2",
                "-T",
                str(int(DURATION)),
                dsn,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
        lat_pg = re.search(r"latency average = ([\d.]+) ms", out)

        rate = count / DURATION
        print(
            f"payment-runtime POST /api/v1/payments: {rate:.1f} payments/s "
            f"(concurrency {CONCURRENCY}, {DURATION:.0f}s, {count} ok, {errors} errors), "
            f"p50 {_pct(lat, 0.50):.1f} ms, p99 {_pct(lat, 0.99):.1f} ms"
        )
        print(
            f"pgbench same SQL transaction:        {tps:.1f} tx/s, latency avg "
            f"{lat_pg.group(1) if lat_pg else '?'} ms"
        )
        print(f"ratio runtime/pgbench: {rate / tps:.3f}")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        sm.stop()
        pg.close()


if __name__ == "__main__":
    raise SystemExit(main())
