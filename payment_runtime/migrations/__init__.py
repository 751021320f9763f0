"""SQL migrations and their runner, applied by ``payment-runtime migrate``.

Files are named ``NNNN_description.sql`` and applied in order, each in its own
transaction, all under one ``pg_advisory_lock`` so that two migrate runs at once (two
Job pods, a retried Job) apply each migration exactly once. Applied versions are
recorded in ``schema_migrations`` with the file's checksum; an applied file whose
content changed is an error, not a silent skip.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

log = logging.getLogger(__name__)

#: Key of the advisory lock migrations run under ("paydeck" in ASCII, as an int).
ADVISORY_LOCK_KEY = 0x70617964656B

_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database's migration history does not match the shipped files."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text, recorded when applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load() -> list[Migration]:
    """The migrations shipped in this package, by version."""
    found: list[Migration] = []
    for entry in resources.files(__package__).iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return found


def expected_version() -> int:
    """The highest shipped version: what readiness requires the database to be at."""
    migrations = load()
    return migrations[-1].version if migrations else 0


def migrate(dsn: str, migrations: list[Migration] | None = None) -> list[int]:
    """Apply every pending migration; return the versions this call applied."""
    todo = load() if migrations is None else migrations
    applied_now: list[int] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            done = {int(v): str(c) for v, c in rows}
            for migration in todo:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} changed after it was applied"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log.info("applied migration", extra={"version": migration.version})
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return applied_now


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The highest applied version, 0 when nothing has been applied."""
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0
