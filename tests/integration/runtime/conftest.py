"""Fixtures of the runtime's integration tests: a migrated database per test, a signer."""

from __future__ import annotations

import pytest

from payment_runtime import migrations
from tests.integration.runtime.helpers import Signer


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer()


@pytest.fixture
def dsn(postgres) -> str:
    url = postgres.new_database(prefix="rt")
    migrations.migrate(url)
    return url
