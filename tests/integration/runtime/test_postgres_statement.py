"""``postgres.statement``: one statement committed on its own, and the connection handed back
to the pool as the pool's others are (not in autocommit), on PostgreSQL itself.

A pool of one connection, so the connection a transaction gets next is the one the statement
used: a leaked autocommit would commit each statement of that transaction on its own.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from payment_runtime.adapters import postgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _run(dsn: str, work) -> None:
    async def main() -> None:
        pool = await postgres.open_pool(dsn, min_size=1, max_size=1, timeout=10)
        try:
            await work(pool)
        finally:
            await pool.close()

    asyncio.run(main())


def _keys(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT key FROM idempotency_keys")}


async def _insert(conn: postgres.Conn, key: str) -> int | None:
    return await postgres.insert_key(conn, scope="s", key=key, method="POST", path="/p",
                                     fingerprint="f")


def test_a_statement_commits_alone_and_leaves_no_autocommit_behind(dsn):
    async def work(pool) -> None:
        async with postgres.statement(pool, "test") as conn:
            assert await _insert(conn, "alone") is not None
        # Not committed until the transaction is: a rollback takes both inserts away.
        with pytest.raises(RuntimeError):
            async with postgres.transaction(pool, "test") as conn:
                assert not conn.autocommit
                await _insert(conn, "in-a-transaction-1")
                await _insert(conn, "in-a-transaction-2")
                raise RuntimeError("roll back")

    _run(dsn, work)
    assert _keys(dsn) == {"alone"}


def test_a_failed_statement_leaves_a_usable_connection_in_transaction_mode(dsn):
    async def work(pool) -> None:
        with pytest.raises(psycopg.errors.UndefinedTable):
            async with postgres.statement(pool, "test") as conn:
                await conn.execute("SELECT * FROM no_such_table")
        async with postgres.connection(pool, "test") as conn:
            assert not conn.autocommit
            assert await _insert(conn, "after-a-failure") is not None
            await conn.rollback()

    _run(dsn, work)
    assert _keys(dsn) == set()
