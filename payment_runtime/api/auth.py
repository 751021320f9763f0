"""JWT bearer authentication against an OIDC JWKS, and role checks per endpoint.

Tokens are verified with PyJWT: signature by a key of the JWKS (chosen by ``kid``),
a fixed algorithm list (never ``none``, never taken from the token), issuer, audience,
expiry. The JWKS comes from an ``https://`` URL, a ``file://`` path, or an injected key
set (tests).

From a URL, ``PyJWKClient`` caches the whole key set for ``cache_seconds`` and nothing
else: its per-kid cache (``cache_keys=True``) would keep a key the identity provider has
retired for the life of the process, so a leaked, rotated-out key would still verify.
"""

from __future__ import annotations

import enum
import json
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
    ) -> None:
        if not algorithms or any(a.lower() == "none" or a.startswith("HS") for a in algorithms):
            raise ValueError("only asymmetric JWT algorithms are accepted")
        self._source = source
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._roles_claim = roles_claim
        self._leeway = leeway

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
        return Principal(str(claims["sub"]), frozenset(str(r) for r in roles))

    @staticmethod
    def require(principal: Principal, allowed: frozenset[Role]) -> None:
        if not principal.roles & {r.value for r in allowed}:
            raise ApiError(403, "forbidden", "your roles do not allow this operation")
