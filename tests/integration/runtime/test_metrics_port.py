"""``/metrics`` lives on the metrics port only, and a scrape never touches the database.

Against a ``payment-runtime serve`` process configured as the operator configures a pod
(``PAYMENT_METRICS_PORT`` set): the app's port answers 404 for ``/metrics``, so an Ingress
or a caller of the API cannot read it; the outbox gauges come from a background task, so a
scrape answers at once even while the outbox table is locked (it used to take a pool
connection and wait on that query), and still reflects the outbox within the interval.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import psycopg
import pytest

from tests.fixtures import _process
from tests.integration.runtime import processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _pending(text: str) -> float | None:
    found = re.search(r"^outbox_pending_events (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _insert_outbox(dsn: str, n: int) -> None:
    with psycopg.connect(dsn) as conn:
        for _ in range(n):
            conn.execute(
                "INSERT INTO outbox (event_id, topic, message_key, event_type, payload)"
                " VALUES (%s, 'payment.events', 'p', 'payment.created', '{}')",
                (uuid.uuid4(),),
            )


def test_metrics_only_on_the_metrics_port_and_scrapes_never_wait_on_the_database(
    dsn, stripe_mock, signer, tmp_path
):
    port, metrics_port = _process.free_port(), _process.free_port()
    env = processes.runtime_env(
        dsn,
        stripe_mock.api_base,
        processes.write_jwks(signer, tmp_path),
        port,
        metrics_port=metrics_port,
        outbox_stats_interval_seconds=1,
    )
    runtime = processes.RuntimeProcess(["serve"], env, tmp_path / "serve.log", port)
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    with processes.running(runtime):
        on_app = httpx.get(f"{runtime.url}/metrics", timeout=5)
        assert on_app.status_code == 404, on_app.text
        assert on_app.json()["error"]["code"] == "not_found"
        assert httpx.get(metrics, timeout=5).status_code == 200

        _insert_outbox(dsn, 3)
        _process.wait_until(
            lambda: _pending(httpx.get(metrics, timeout=5).text) == 3.0,
            what="outbox_pending_events to reach 3",
            timeout=15,
        )

        with psycopg.connect(dsn) as blocker:
            blocker.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
            for _ in range(5):
                started = time.monotonic()
                scraped = httpx.get(metrics, timeout=3)
                assert scraped.status_code == 200
                assert time.monotonic() - started < 1.0
                assert _pending(scraped.text) == 3.0  # the last value the task read
            blocker.rollback()

        _insert_outbox(dsn, 2)
        _process.wait_until(
            lambda: _pending(httpx.get(metrics, timeout=5).text) == 5.0,
            what="outbox_pending_events to reach 5 after the lock",
            timeout=15,
        )
        assert "unhandled error" not in runtime.log()
