"""Fixtures of the CRD integration tests: one namespace shared by a module's rejection tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.fixtures.cluster import KubeCluster


@pytest.fixture(scope="module")
def module_namespace(cluster: KubeCluster, crd: object) -> Iterator[str]:
    """A namespace for tests that create nothing or only uniquely named objects."""
    name = f"api-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
