"""JWT bearer authentication against an OIDC JWKS, and role checks per endpoint.

Tokens are verified with PyJWT: signature by a key of the JWKS (chosen by ``kid``),
a fixed algorithm list (never ``none``, never taken from the token), issuer, audience,
expiry. The JWKS comes from an ``https://`` URL, a ``file://`` path, or an injected key
set (tests).

From a URL, ``PyJWKClient`` caches the whole key set for ``cache_seconds`` and nothing
else: its per-kid cache (``cache_keys=True``) would keep a key the identity provider has
retired for the life of the process, so a leaked, rotated-out key would still verify.

A verified token is remembered (by its SHA-256) until the earlier of its ``exp`` and the end
of the life of the key set that verified it (fetched at or after the key-set cache's timestamp
read before the call, plus ``cache_seconds``): a key removed from the JWKS still stops
verifying within the key-set cache time, and a request with a known token skips RS256.
Refused tokens are never remembered.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import jwt

from payment_runtime.errors import ApiError


class Role(enum.StrEnum):
    """The roles an identity provider puts in the token's roles claim."""

    ADMIN = "payment_admin"  # everything
    OPERATOR = "payment_operator"  # process payments: create, capture, cancel
    VIEWER = "payment_viewer"  # read-only
    SUPPORT = "payment_support"  # refunds and queries


READ = frozenset(Role)
PROCESS = frozenset({Role.ADMIN, Role.OPERATOR})
REFUND = frozenset({Role.ADMIN, Role.SUPPORT})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    subject: str
    roles: frozenset[str]


class KeySource:
    """Where signing keys come from; with neither a URL nor a key set, nowhere.

    An unconfigured source keeps the service up (health, metrics, webhooks) while the
    payment API refuses every call with 503 ``auth_not_configured``. A pod deployed by the
    operator gets its JWKS URL, issuer and audience from the PaymentService's ``spec.auth``.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        jwks: dict[str, Any] | None = None,
        cache_seconds: float = 300,
    ) -> None:
        self._client: jwt.PyJWKClient | None = None
        self._set: jwt.PyJWKSet | None = None
        self._cache_seconds = cache_seconds
        if jwks is not None:
            self._set = jwt.PyJWKSet.from_dict(jwks)
        elif url and url.startswith("file://"):
            self._set = jwt.PyJWKSet.from_dict(json.loads(Path(url[7:]).read_text()))
        elif url:
            self._client = jwt.PyJWKClient(
                url, cache_keys=False, cache_jwk_set=True, lifespan=cache_seconds, timeout=5
            )

    @property
    def configured(self) -> bool:
        """Whether there are keys to verify tokens with."""
        return self._set is not None or self._client is not None

    def keys_valid_until(self) -> float:
        """A monotonic time before which every key this source hands out next is current.

        Read *before* :meth:`key_for`: the key set that call uses was fetched at or after the
        cache's timestamp now (or, with nothing cached, during the call: after now), so it
        expires no sooner than the returned time. ``inf`` for a fixed key set, which never
        changes in this process.
        """
        if self._set is not None:
            return math.inf
        assert self._client is not None
        cache = self._client.jwk_set_cache
        stamped = cache.jwk_set_with_timestamp if cache is not None else None
        fetched = stamped.get_timestamp() if stamped is not None else time.monotonic()
        return fetched + self._cache_seconds

    async def key_for(self, token: str) -> Any:
        if self._set is not None:
            kid = jwt.get_unverified_header(token).get("kid")
            for key in self._set.keys:
                if kid is None or key.key_id == kid:
                    return key.key
            raise jwt.InvalidTokenError("no key for this token's kid")
        assert self._client is not None
        client = self._client
        signing = await anyio.to_thread.run_sync(client.get_signing_key_from_jwt, token)
        return signing.key


class Authenticator:
    """Verifies bearer tokens and enforces roles."""

    def __init__(
        self,
        source: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        roles_claim: str = "roles",
        leeway: int = 30,
        cache_size: int = 4096,
    ) -> None:
        if not algorithms or any(a.lower() == "none" or a.startswith("HS") for a in algorithms):
            raise ValueError("only asymmetric JWT algorithms are accepted")
        self._source = source
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._roles_claim = roles_claim
        self._leeway = leeway
        self._cache_size = cache_size
        # sha256(token) -> (principal, monotonic deadline)
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    def _remember(self, digest: bytes, principal: Principal, deadline: float) -> None:
        now = time.monotonic()
        if len(self._verified) >= self._cache_size:
            self._verified = {d: e for d, e in self._verified.items() if e[1] > now}
            if len(self._verified) >= self._cache_size:
                self._verified.clear()
        if deadline > now:
            self._verified[digest] = (principal, deadline)

    async def authenticate(self, authorization: str | None) -> Principal:
        if not self._source.configured:
            raise ApiError(
                503,
                "auth_not_configured",
                "no JWKS URL (PAYMENT_JWKS_URL) is configured: the payment API is disabled",
            )
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(401, "unauthenticated", "a bearer token is required")
        token = authorization[7:].strip()
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            if time.monotonic() < known[1]:
                return known[0]
            del self._verified[digest]
        keys_until = self._source.keys_valid_until()
        try:
            key = await self._source.key_for(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise ApiError(401, "invalid_token", "the bearer token is not valid") from exc
        roles = claims.get(self._roles_claim) or []
        if isinstance(roles, str):
            roles = roles.split()
        principal = Principal(str(claims["sub"]), frozenset(str(r) for r in roles))
        # exp without the leeway, on the monotonic clock
        exp_until = time.monotonic() + (float(claims["exp"]) - time.time())
        self._remember(digest, principal, min(keys_until, exp_until))
        return principal

    @staticmethod
    def require(principal: Principal, allowed: frozenset[Role]) -> None:
        if not principal.roles & {r.value for r in allowed}:
            raise ApiError(403, "forbidden", "your roles do not allow this operation")
