"""The verified-token cache: a known token skips verification until the earlier of its
``exp`` and the life of the key set that verified it; refused tokens are never remembered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from payment_runtime.api.auth import Authenticator, KeySource
from payment_runtime.errors import ApiError
from tests.integration.runtime.helpers import AUDIENCE, ISSUER, Signer

pytestmark = pytest.mark.unit


class CountingSource(KeySource):
    """A fixed key set whose keys are current until ``valid_for`` seconds from each read."""

    def __init__(self, jwks: dict[str, Any], valid_for: float | None = None) -> None:
        super().__init__(jwks=jwks)
        self.lookups = 0
        self.valid_for = valid_for

    def keys_valid_until(self) -> float:
        if self.valid_for is None:
            return super().keys_valid_until()
        return time.monotonic() + self.valid_for

    async def key_for(self, token: str) -> Any:
        self.lookups += 1
        return await super().key_for(token)


def _auth(source: KeySource) -> Authenticator:
    return Authenticator(source, issuer=ISSUER, audience=AUDIENCE, algorithms=["RS256"])


def _run(auth: Authenticator, token: str) -> Any:
    return asyncio.run(auth.authenticate(f"Bearer {token}"))


def test_a_known_token_is_not_verified_again():
    signer = Signer()
    source = CountingSource(signer.jwks)
    auth = _auth(source)
    token = signer.token("payment_operator")
    first = _run(auth, token)
    assert _run(auth, token) == first
    assert source.lookups == 1
    _run(auth, signer.token("payment_operator", sub="other"))
    assert source.lookups == 2


def test_the_cache_ends_with_the_key_set():
    signer = Signer()
    source = CountingSource(signer.jwks, valid_for=0.2)
    auth = _auth(source)
    token = signer.token("payment_viewer")
    _run(auth, token)
    _run(auth, token)
    assert source.lookups == 1
    time.sleep(0.3)
    _run(auth, token)
    assert source.lookups == 2


def test_the_cache_ends_with_the_token():
    signer = Signer()
    source = CountingSource(signer.jwks)
    auth = _auth(source)
    # Valid for ~1 s more (exp in the future, not counting the 30 s leeway).
    token = signer.token("payment_viewer", exp=int(time.time()) + 1)
    _run(auth, token)
    time.sleep(max(0.0, int(time.time()) + 1 - time.time()) + 0.1)
    _run(auth, token)  # within the leeway: still valid, but verified again
    assert source.lookups == 2


def test_a_refused_token_is_not_remembered():
    signer, stranger = Signer(), Signer(kid=Signer().kid)
    source = CountingSource(signer.jwks)
    auth = _auth(source)
    token = stranger.token("payment_admin")
    for _ in range(2):
        with pytest.raises(ApiError) as refused:
            _run(auth, token)
        assert refused.value.status == 401
    assert source.lookups == 2
