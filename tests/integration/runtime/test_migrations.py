"""`payment-runtime migrate`: run twice at once, each migration is applied exactly once."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from payment_runtime import migrations

pytestmark = pytest.mark.integration


def test_two_concurrent_migrate_runs_apply_each_migration_once(postgres):
    url = postgres.new_database(prefix="mig")
    env = {**os.environ, "PAYMENT_DATABASE_URL": url, "PAYMENT_SECRETS_PROVIDER": "env"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "payment_runtime.cli", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in migrations.load()]
    applied_logs = sum(o.count('"message": "applied migration"') for o in outputs)
    assert applied_logs == len(versions)  # once in total, not once per run
    # A third run is a no-op.
    assert migrations.migrate(url) == []


def test_changed_applied_migration_is_an_error(postgres):
    url = postgres.new_database(prefix="mig")
    shipped = migrations.load()
    migrations.migrate(url, shipped)
    edited = [migrations.Migration(shipped[0].version, shipped[0].name, shipped[0].sql + "\n-- x")]
    with pytest.raises(migrations.MigrationError):
        migrations.migrate(url, edited)
