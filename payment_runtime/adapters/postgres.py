"""PostgreSQL access through psycopg 3's async connection pool.

Plain SQL, one function per statement family; callers own the transactions, so a
payment row, its outbox event and its idempotency key are committed together.
:func:`transaction` (and :func:`connection`, for reads) take a pooled connection as one
traced client span named after the caller's phase.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from opentelemetry.trace import SpanKind
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from payment_runtime import tracing
from payment_runtime.domain.events import PaymentEvent

Conn = AsyncConnection[DictRow]
_SPAN_ATTRIBUTES = {"db.system.name": "postgresql", "db.system": "postgresql"}


@contextlib.asynccontextmanager
async def transaction(pool: Any, phase: str) -> AsyncIterator[Conn]:
    """One transaction on a pooled connection, traced as the span ``transaction <phase>``
    (its time includes the wait for a pooled connection)."""
    attributes = {**_SPAN_ATTRIBUTES, "db.operation.name": "transaction", "paydeck.phase": phase}
    with tracing.span(f"transaction {phase}", SpanKind.CLIENT, attributes):
        async with pool.connection() as conn, conn.transaction():
            yield conn


@contextlib.asynccontextmanager
async def statement(pool: Any, phase: str) -> AsyncIterator[Conn]:
    """A pooled connection in autocommit for **one** statement, which is its own transaction:
    one round trip where :func:`transaction` takes three (BEGIN, the statement, COMMIT).
    Traced as ``transaction <phase>``, as it is one. Only for a single statement: two
    statements here would be two transactions."""
    attributes = {**_SPAN_ATTRIBUTES, "db.operation.name": "transaction", "paydeck.phase": phase}
    with tracing.span(f"transaction {phase}", SpanKind.CLIENT, attributes):
        async with pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                yield conn
            finally:
                # A connection left mid-statement (cancelled) or broken is not idle: the
                # pool discards it, whatever its mode.
                if conn.pgconn.transaction_status == TransactionStatus.IDLE:
                    await conn.set_autocommit(False)


@contextlib.asynccontextmanager
async def connection(pool: Any, phase: str) -> AsyncIterator[Conn]:
    """A pooled connection for reads (rolled back when returned), traced as ``read <phase>``."""
    attributes = {**_SPAN_ATTRIBUTES, "db.operation.name": "read", "paydeck.phase": phase}
    with tracing.span(f"read {phase}", SpanKind.CLIENT, attributes):
        async with pool.connection() as conn:
            yield conn


async def open_pool(dsn: str, *, min_size: int, max_size: int, timeout: float) -> Any:
    """An opened pool whose connections return rows as dicts."""
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs={"row_factory": dict_row, "autocommit": False},
        open=False,
        name="payment-runtime",
    )
    await pool.open(wait=True, timeout=timeout)
    return pool


# --- payments -----------------------------------------------------------------------

PAYMENT_COLUMNS = (
    "id, amount_minor, currency, customer_id, payment_method, description, status,"
    " amount_refunded, stripe_payment_intent_id, created_at, updated_at"
)


async def insert_payment_of_key(
    conn: Conn,
    key_id: int,
    *,
    payment_id: uuid.UUID,
    amount_minor: int,
    currency: str,
    customer_id: str,
    payment_method: str,
    description: str | None,
    status: str,
) -> None:
    """Insert the payment and move its key to ``resource_created`` in one statement."""
    await conn.execute(
        "WITH p AS (INSERT INTO payments (id, amount_minor, currency, customer_id,"
        " payment_method, description, status) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id)"
        " UPDATE idempotency_keys SET recovery_point = 'resource_created',"
        " resource_id = (SELECT id FROM p) WHERE id = %s",
        (
            payment_id, amount_minor, currency, customer_id, payment_method, description,
            status, key_id,
        ),
    )


async def get_payment(
    conn: Conn, payment_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    cur = await conn.execute(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = %s{lock}",  # noqa: S608
        (payment_id,),
    )
    return await cur.fetchone()


async def find_payment_by_intent(conn: Conn, intent_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"SELECT {PAYMENT_COLUMNS} FROM payments"  # noqa: S608
        " WHERE stripe_payment_intent_id = %s FOR UPDATE",
        (intent_id,),
    )
    return await cur.fetchone()


async def update_payment(
    conn: Conn,
    payment_id: uuid.UUID,
    *,
    status: str,
    amount_refunded: int | None = None,
    intent_id: str | None = None,
) -> dict[str, Any]:
    cur = await conn.execute(
        "UPDATE payments SET status = %s,"  # noqa: S608
        " amount_refunded = coalesce(%s, amount_refunded),"
        " stripe_payment_intent_id = coalesce(%s, stripe_payment_intent_id),"
        f" updated_at = now() WHERE id = %s RETURNING {PAYMENT_COLUMNS}",
        (status, amount_refunded, intent_id, payment_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


# --- refunds ------------------------------------------------------------------------


async def reserved_refunds(conn: Conn, payment_id: uuid.UUID) -> int:
    """Minor units already refunded or being refunded (not failed)."""
    cur = await conn.execute(
        "SELECT coalesce(sum(amount_minor), 0) AS total FROM refunds"
        " WHERE payment_id = %s AND status NOT IN ('failed', 'canceled')",
        (payment_id,),
    )
    row = await cur.fetchone()
    return int(row["total"]) if row else 0


async def insert_refund(
    conn: Conn, *, refund_id: uuid.UUID, payment_id: uuid.UUID, amount_minor: int
) -> None:
    await conn.execute(
        "INSERT INTO refunds (id, payment_id, amount_minor, status) VALUES (%s, %s, %s, 'pending')",
        (refund_id, payment_id, amount_minor),
    )


async def get_refund(conn: Conn, refund_id: uuid.UUID) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT id, payment_id, amount_minor, status, stripe_refund_id, created_at"
        " FROM refunds WHERE id = %s FOR UPDATE",
        (refund_id,),
    )
    return await cur.fetchone()


async def update_refund(
    conn: Conn, refund_id: uuid.UUID, *, status: str, stripe_refund_id: str | None
) -> dict[str, Any]:
    cur = await conn.execute(
        "UPDATE refunds SET status = %s, stripe_refund_id = coalesce(%s, stripe_refund_id)"
        " WHERE id = %s RETURNING id, payment_id, amount_minor, status, stripe_refund_id,"
        " created_at",
        (status, stripe_refund_id, refund_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


# --- outbox -------------------------------------------------------------------------


async def insert_outbox(
    conn: Conn, event: PaymentEvent, topic: str, trace_context: Mapping[str, str] | None = None
) -> None:
    """Queue ``event``; ``trace_context`` (W3C headers) lets the relay join the trace."""
    await conn.execute(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, trace_context)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            event.event_id,
            topic,
            event.payment_id,
            event.event_type,
            Jsonb(event.to_payload()),
            None if trace_context is None else Jsonb(dict(trace_context)),
        ),
    )


async def outbox_stats(conn: Conn) -> tuple[int, float]:
    """Number of unpublished events and the age in seconds of the oldest one."""
    cur = await conn.execute(
        "SELECT count(*) AS pending,"
        " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS lag"
        " FROM outbox WHERE published_at IS NULL"
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["pending"]), float(row["lag"])


# --- idempotency keys ---------------------------------------------------------------


async def insert_key(
    conn: Conn, *, scope: str, key: str, method: str, path: str, fingerprint: str
) -> int | None:
    """Record and lock a new key; None when the key already exists."""
    cur = await conn.execute(
        "INSERT INTO idempotency_keys (scope, key, request_method, request_path,"
        " request_fingerprint, recovery_point, locked_at)"
        " VALUES (%s, %s, %s, %s, %s, 'started', now())"
        " ON CONFLICT (scope, key) DO NOTHING RETURNING id",
        (scope, key, method, path, fingerprint),
    )
    row = await cur.fetchone()
    return int(row["id"]) if row else None


async def lock_existing_key(conn: Conn, *, scope: str, key: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT id, request_fingerprint, recovery_point, locked_at, resource_id,"
        " response_code, response_body, now() AS db_now"
        " FROM idempotency_keys WHERE scope = %s AND key = %s FOR UPDATE",
        (scope, key),
    )
    return await cur.fetchone()


async def relock_key(conn: Conn, key_id: int) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET locked_at = now(), last_run_at = now() WHERE id = %s",
        (key_id,),
    )


async def set_recovery_point(
    conn: Conn, key_id: int, recovery_point: str, resource_id: uuid.UUID | None
) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET recovery_point = %s, resource_id = %s WHERE id = %s",
        (recovery_point, resource_id, key_id),
    )


async def finish_key(conn: Conn, key_id: int, status: int, body: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET recovery_point = 'finished', locked_at = NULL,"
        " response_code = %s, response_body = %s WHERE id = %s",
        (status, Jsonb(json.loads(json.dumps(body, default=_json_default))), key_id),
    )


async def release_key(conn: Conn, key_id: int) -> None:
    await conn.execute("UPDATE idempotency_keys SET locked_at = NULL WHERE id = %s", (key_id,))


# --- webhook events -----------------------------------------------------------------


async def record_webhook_event(conn: Conn, event_id: str, event_type: str) -> bool:
    """True when this event id is seen for the first time."""
    cur = await conn.execute(
        "INSERT INTO webhook_events (event_id, event_type, verdict) VALUES (%s, %s, 'received')"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        (event_id, event_type),
    )
    return await cur.fetchone() is not None


async def set_webhook_verdict(conn: Conn, event_id: str, verdict: str) -> None:
    await conn.execute(
        "UPDATE webhook_events SET verdict = %s WHERE event_id = %s", (verdict, event_id)
    )


# --- retention ------------------------------------------------------------------------


async def purge_idempotency_keys(conn: Conn, *, older_than_seconds: float, limit: int) -> int:
    """Delete up to ``limit`` keys created more than ``older_than_seconds`` ago.

    Only keys whose request finished, or never got past ``started`` (nothing of ours
    exists yet; Stripe keys derive from our ids, so a new attempt repeats nothing), and
    that no attempt locked within that time. A key whose request created a payment or a
    refund but did not finish stays, so that the client's retry can still complete it.
    Rows a request holds are skipped, never waited for.
    """
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE id IN ("
        " SELECT id FROM idempotency_keys"
        " WHERE created_at < now() - make_interval(secs => %s)"
        " AND recovery_point IN ('finished', 'started')"
        " AND (locked_at IS NULL OR locked_at < now() - make_interval(secs => %s))"
        " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED)",
        (older_than_seconds, older_than_seconds, limit),
    )
    return cur.rowcount


async def purge_webhook_events(conn: Conn, *, older_than_seconds: float, limit: int) -> int:
    """Delete up to ``limit`` webhook event ids received more than that long ago."""
    cur = await conn.execute(
        "DELETE FROM webhook_events WHERE event_id IN ("
        " SELECT event_id FROM webhook_events"
        " WHERE received_at < now() - make_interval(secs => %s)"
        " ORDER BY received_at LIMIT %s FOR UPDATE SKIP LOCKED)",
        (older_than_seconds, limit),
    )
    return cur.rowcount


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
