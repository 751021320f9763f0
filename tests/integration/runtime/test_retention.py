"""Idempotency keys and webhook event ids are purged after the retention, off the request path.

A ``payment-runtime serve`` process with a one-hour retention purges, from its background
task and with no request made, what is older than that: finished keys, keys that never got
past ``started`` and are not locked, webhook event ids. It keeps what is younger, and a
key whose request created a resource but never finished (the client's retry resumes it).
"""

from __future__ import annotations

import httpx
import psycopg
import pytest

from tests.fixtures import _process
from tests.integration.runtime import processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEYS = {
    # key: (age, recovery point, locked minutes ago or None), expected to survive
    "old-finished": ("2 hours", "finished", None, False),
    "old-started": ("2 hours", "started", None, False),
    "old-started-stale-lock": ("3 hours", "started", 150, False),
    "old-resource-created": ("2 hours", "resource_created", None, True),
    "old-started-locked-now": ("2 hours", "started", 0, True),
    "young-finished": ("10 minutes", "finished", None, True),
}
EVENTS = {"evt_old": ("25 hours", False), "evt_young": ("30 minutes", True)}


def _seed(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        for key, (age, point, locked, _) in KEYS.items():
            conn.execute(
                "INSERT INTO idempotency_keys (scope, key, request_method, request_path,"
                " request_fingerprint, recovery_point, locked_at, created_at)"
                " VALUES ('client-1', %s, 'POST', '/api/v1/payments', 'f', %s,"
                " CASE WHEN %s::int IS NULL THEN NULL"
                " ELSE now() - make_interval(mins => %s::int) END,"
                " now() - %s::interval)",
                (key, point, locked, locked, age),
            )
        for event_id, (age, _) in EVENTS.items():
            conn.execute(
                "INSERT INTO webhook_events (event_id, event_type, verdict, received_at)"
                " VALUES (%s, 'payment_intent.succeeded', 'apply', now() - %s::interval)",
                (event_id, age),
            )


def _left(dsn: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(dsn) as conn:
        keys = {r[0] for r in conn.execute("SELECT key FROM idempotency_keys")}
        events = {r[0] for r in conn.execute("SELECT event_id FROM webhook_events")}
    return keys, events


def test_old_keys_and_event_ids_are_purged_in_the_background(
    dsn, stripe_mock, signer, tmp_path
):
    _seed(dsn)
    port = _process.free_port()
    env = processes.runtime_env(
        dsn,
        stripe_mock.api_base,
        processes.write_jwks(signer, tmp_path),
        port,
        idempotency_retention_hours=1,
        webhook_event_retention_hours=24,
        retention_interval_seconds=0.5,
    )
    runtime = processes.RuntimeProcess(["serve"], env, tmp_path / "serve.log", port)
    expected_keys = {k for k, v in KEYS.items() if v[-1]}
    expected_events = {e for e, v in EVENTS.items() if v[-1]}
    with processes.running(runtime, wait_healthy=False):
        # No request at all (not even the health check the start would make).
        _process.wait_until(
            lambda: _left(dsn) == (expected_keys, expected_events),
            what="the purge of old keys and event ids",
            timeout=30,
            process=runtime.process,
            log=runtime.log_file,
        )
        assert httpx.get(f"{runtime.url}/health", timeout=5).status_code == 200
        assert "purged expired" in runtime.log()
