"""Idempotency rules, after Brandur Leach's "Implementing Stripe-like Idempotency Keys".

A client's ``Idempotency-Key`` names one logical request. We store the request's
fingerprint, a *recovery point* (how far the request got through its atomic phases)
and finally the response. A retry with the same key either replays the response,
resumes from the recovery point, or is refused: while another attempt holds the key's
lock (409), or when the body differs from the first one (422).

Calls to Stripe carry a key derived from *our* ids, so a resumed request sends the same
key again and Stripe returns the original object instead of charging twice.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MAX_KEY_LENGTH = 255
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces


class IdempotencyError(ValueError):
    """A refused idempotent request; ``code`` and ``status`` go into the response."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


class RecoveryPoint(enum.StrEnum):
    """Phases of a mutating request; each is reached by committing one transaction."""

    STARTED = "started"  # key recorded and locked, nothing else done
    RESOURCE_CREATED = "resource_created"  # our payment/refund row exists, id fixed
    FINISHED = "finished"  # response stored; retries replay it


class Action(enum.StrEnum):
    """What a stored key lets the current attempt do."""

    PROCEED = "proceed"  # lock taken: continue from the recovery point
    REPLAY = "replay"  # return the stored response


def validate_key(key: str | None) -> str:
    """Check a client-supplied ``Idempotency-Key`` header value."""
    if key is None or key == "":
        raise IdempotencyError(
            "idempotency_key_required", 400, "the Idempotency-Key header is required"
        )
    if not _KEY_RE.match(key):
        raise IdempotencyError(
            "idempotency_key_invalid",
            400,
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} visible ASCII characters",
        )
    return key


def fingerprint(method: str, path: str, body: Mapping[str, Any] | None) -> str:
    """A stable digest of a request: method, path and the canonical JSON of its body.

    The body is canonicalized (sorted keys, fixed separators) so that whitespace or key
    order does not count as a different request, while any value change does.
    """
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredKey:
    """The parts of a stored key that decide what a new attempt may do."""

    fingerprint: str
    recovery_point: RecoveryPoint
    locked_at: datetime | None


def decide(
    stored: StoredKey, request_fingerprint: str, now: datetime, lock_timeout: timedelta
) -> Action:
    """Decide what an attempt arriving with an already-stored key does.

    Raises :class:`IdempotencyError` for a different body (422) or for a key whose lock
    is held by an attempt that started less than ``lock_timeout`` ago (409). A lock older
    than that belongs to a crashed attempt and is taken over.
    """
    if stored.fingerprint != request_fingerprint:
        raise IdempotencyError(
            "idempotency_key_reused",
            422,
            "this Idempotency-Key was used with a different request",
        )
    if stored.recovery_point is RecoveryPoint.FINISHED:
        return Action.REPLAY
    if stored.locked_at is not None and now - stored.locked_at < lock_timeout:
        raise IdempotencyError(
            "idempotency_key_in_use",
            409,
            "a request with this Idempotency-Key is in progress; retry later",
        )
    return Action.PROCEED


def stripe_key(action: str, resource_id: str) -> str:
    """The idempotency key we send to Stripe for ``action`` on one of our resources.

    It depends only on our own ids, never on time or randomness, so every retry of the
    same logical operation presents the same key.
    """
    if not action or not resource_id:
        raise ValueError("action and resource id are required")
    return f"paydeck:{action}:{resource_id}"
