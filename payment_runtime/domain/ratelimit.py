"""Per-client rate limits of the mutating endpoints, and their response headers.

Pure: the quota (``requests`` per ``window_seconds`` per authenticated subject), the Redis
key, and the reading of the script's answer into the fields of the IETF httpapi draft
"RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-06):
``RateLimit-Limit`` (the quota), ``RateLimit-Remaining`` (what is left of it),
``RateLimit-Reset`` (delta-seconds until it is restored) and ``RateLimit-Policy``
(``<requests>;w=<window seconds>``), plus ``Retry-After`` on a 429.

The window is fixed and starts with a client's first request (an atomic ``INCR`` that sets
the key's expiry when it creates it, :mod:`payment_runtime.adapters.risk`): O(1) per
request, one counter per client, exact header values.  A client may spend two quotas
back to back across a window's end; the velocity limits (sliding) are the fraud control.
"""

from __future__ import annotations

from dataclasses import dataclass

from payment_runtime.domain.velocity import digest

#: The error code of a request over the rate limit.
REFUSAL_CODE = "rate_limited"


@dataclass(frozen=True, slots=True)
class Quota:
    """``requests`` mutating requests per client per ``window_seconds``."""

    requests: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Usage:
    """One request's place in its client's window."""

    quota: Quota
    count: int  # requests in the window, this one included
    reset_seconds: int  # until the window ends

    @property
    def allowed(self) -> bool:
        return self.count <= self.quota.requests

    @property
    def remaining(self) -> int:
        return max(0, self.quota.requests - self.count)

    def headers(self) -> dict[str, str]:
        """The draft's fields, and ``Retry-After`` when the request is refused."""
        out = {
            "RateLimit-Limit": str(self.quota.requests),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.quota.requests};w={self.quota.window_seconds}",
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset_seconds)
        return out


def key(prefix: str, subject: str) -> str:
    """The counter of a client (its subject hashed)."""
    return f"{prefix}rl:{digest(subject)}"


def usage(quota: Quota, answer: list[int]) -> Usage:
    """Read the script's ``[count, ms until the window ends]``."""
    count, ttl_ms = int(answer[0]), int(answer[1])
    if ttl_ms < 0:  # no expiry (cannot happen: the script sets one); a whole window
        ttl_ms = quota.window_seconds * 1000
    return Usage(quota, count, max(1, min(quota.window_seconds, -(-ttl_ms // 1000))))
