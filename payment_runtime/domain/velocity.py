"""Velocity limits: how many payment attempts (and how much money) one customer, payment
method or API client may put through in a sliding window, before any reaches Stripe.

Pure: the limit model (also the runtime setting ``PAYMENT_VELOCITY_LIMITS``, a JSON list),
the Redis keys of an attempt, the script's arguments and the reading of its answer. The I/O
is :mod:`payment_runtime.adapters.risk`, one atomic Lua call per attempt.

Keys never carry a raw customer or payment-method id: each subject is hashed (SHA-256,
truncated), so a Redis dump lists no personal data in clear.  The hash is not keyed: it
hides ids from a casual reader of the store, not from someone who guesses them.

A window is a sorted set of attempts scored by the Redis server's clock (one clock for every
pod), so it really slides: an attempt stops counting ``window_seconds`` after it was made.
A limit with amounts keeps, beside its window, a hash of the window's amounts summed by
currency, so it reads one field instead of scanning the window; a count-only limit has its
own window without sums (``:n:`` in its key, ``:a:`` for one with amounts).
An attempt is a member named after the idempotency key, so a retry of an admitted request
(same key) is not counted twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scope = Literal["customer", "payment_method", "client"]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

#: The error code of a payment refused by a velocity limit.
REFUSAL_CODE = "velocity_limit_exceeded"
#: Longest window: a week.
MAX_WINDOW_SECONDS = 7 * 24 * 3600
#: The script's "no limit" marker for an argument.
NO_LIMIT = -1
#: ``max_amount`` of a limit with amounts, but none in the charge's currency: the sums are
#: kept (every currency's), nothing is refused.
TRACK_ONLY = -2


class VelocityLimit(BaseModel):
    """At most ``max_attempts`` attempts and/or ``max_amount[currency]`` minor units of the
    charge's currency per ``scope`` subject within any ``window_seconds``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: Scope
    window_seconds: int = Field(ge=1, le=MAX_WINDOW_SECONDS)
    max_attempts: int | None = Field(default=None, ge=1, le=1_000_000)
    max_amount: dict[CurrencyCode, Annotated[int, Field(ge=1, le=10**15)]] | None = Field(
        default=None, max_length=64
    )

    @model_validator(mode="after")
    def _something_limited(self) -> VelocityLimit:
        if self.max_attempts is None and not self.max_amount:
            raise ValueError("a velocity limit needs max_attempts or max_amount")
        return self


@dataclass(frozen=True, slots=True)
class Attempt:
    """One payment attempt, as the velocity check sees it."""

    client: str  # the authenticated subject (JWT sub)
    idempotency_key: str
    customer: str
    payment_method: str
    currency: str
    amount_minor: int

    def subject(self, scope: Scope) -> str:
        if scope == "customer":
            return self.customer
        if scope == "payment_method":
            return self.payment_method
        return self.client


@dataclass(frozen=True, slots=True)
class Check:
    """What the script gets: two keys per limit (the window and its sums), then per limit
    its window (ms) and maximums."""

    keys: list[str]
    args: list[str | int]


@dataclass(frozen=True, slots=True)
class Decision:
    """The script's verdict: admitted, or refused by ``limit`` for ``retry_after`` s."""

    admitted: bool
    limit: VelocityLimit | None = None
    retry_after_seconds: int = 0


def digest(value: str) -> str:
    """The pseudonym of an id inside a Redis key."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def key(prefix: str, limit: VelocityLimit, attempt: Attempt) -> str:
    """The sorted set of ``limit``'s window for this attempt's subject."""
    who = digest(attempt.subject(limit.scope))
    kind = "a" if limit.max_amount else "n"
    return f"{prefix}vel:{limit.scope}:{limit.window_seconds}:{kind}:{who}"


def sums_key(window_key: str) -> str:
    """The hash of a window's amounts by currency."""
    return f"{window_key}:sum"


def member(attempt: Attempt) -> str:
    """The attempt inside a window: ``<hash of client and key>:<currency>:<amount>``."""
    ident = digest(f"{attempt.client}\0{attempt.idempotency_key}")
    return f"{ident}:{attempt.currency}:{attempt.amount_minor}"


def check(prefix: str, limits: tuple[VelocityLimit, ...], attempt: Attempt) -> Check:
    """The script's keys and arguments: ``member``, ``currency``, ``amount`` and the limits'
    parameters (:func:`parameters`, one argument: fewer to encode per call)."""
    keys: list[str] = []
    for limit in limits:
        window = key(prefix, limit, attempt)
        keys += [window, sums_key(window)]
    args: list[str | int] = [
        member(attempt), attempt.currency, attempt.amount_minor,
        parameters(limits, attempt.currency),
    ]
    return Check(keys, args)


def parameters(limits: tuple[VelocityLimit, ...], currency: str) -> str:
    """Per limit ``window_ms,max_attempts,max_amount`` joined by ``;``: ``max_attempts`` is
    ``NO_LIMIT`` when unset, ``max_amount`` ``NO_LIMIT`` for a count-only limit and
    ``TRACK_ONLY`` for a currency it does not list."""
    out = []
    for limit in limits:
        if not limit.max_amount:
            max_amount = NO_LIMIT
        else:
            max_amount = limit.max_amount.get(currency, TRACK_ONLY)
        attempts = NO_LIMIT if limit.max_attempts is None else limit.max_attempts
        out.append(f"{limit.window_seconds * 1000},{attempts},{max_amount}")
    return ";".join(out)


def decision(limits: tuple[VelocityLimit, ...], answer: list[int]) -> Decision:
    """Read the script's ``[refused limit's 1-based index or 0, retry after ms]``."""
    index, retry_ms = int(answer[0]), int(answer[1])
    if index == 0:
        return Decision(admitted=True)
    return Decision(False, limits[index - 1], max(1, -(-retry_ms // 1000)))


def refusal_details(limit: VelocityLimit, retry_after_seconds: int) -> dict[str, object]:
    """The ``details`` of a refusal: which limit, never whose subject."""
    return {
        "scope": limit.scope,
        "window_seconds": limit.window_seconds,
        "retry_after_seconds": retry_after_seconds,
    }
