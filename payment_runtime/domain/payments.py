"""The payment state machine.

A payment only ever moves forward along a directed acyclic graph of statuses, so a
late or replayed event (a webhook delivered out of order, a retried request) can never
move a payment backwards. Every decision is a pure function of the current state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PaymentStatus(enum.StrEnum):
    """Where a payment stands, from our side of the Stripe PaymentIntent."""

    PENDING = "pending"  # our row exists, Stripe not yet (successfully) called
    REQUIRES_ACTION = "requires_action"  # customer authentication (3-D Secure) needed
    PROCESSING = "processing"
    FAILED = "failed"  # last attempt failed; Stripe may still succeed on a new attempt
    AUTHORIZED = "authorized"  # funds held, awaiting capture
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELED = "canceled"


S = PaymentStatus

#: Allowed transitions. The graph is acyclic (tests check it), except for the
#: self-loop on PARTIALLY_REFUNDED, which is guarded by the refunded amount growing.
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.PENDING: frozenset(
        {S.REQUIRES_ACTION, S.PROCESSING, S.FAILED, S.AUTHORIZED, S.CAPTURED, S.CANCELED}
    ),
    S.REQUIRES_ACTION: frozenset({S.PROCESSING, S.FAILED, S.AUTHORIZED, S.CAPTURED, S.CANCELED}),
    S.PROCESSING: frozenset({S.FAILED, S.AUTHORIZED, S.CAPTURED, S.CANCELED}),
    S.FAILED: frozenset({S.AUTHORIZED, S.CAPTURED, S.CANCELED}),
    S.AUTHORIZED: frozenset({S.CAPTURED, S.CANCELED}),
    S.CAPTURED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.CANCELED: frozenset(),
}

TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


class TransitionError(ValueError):
    """A requested operation is not allowed in the payment's current status."""

    def __init__(self, current: PaymentStatus, operation: str) -> None:
        super().__init__(f"cannot {operation} a payment that is {current.value}")
        self.current = current
        self.operation = operation
        self.code = "invalid_state_transition"


def can_transition(current: PaymentStatus, target: PaymentStatus) -> bool:
    """Whether ``current -> target`` is a forward move of the state machine."""
    return target in TRANSITIONS[current]


# --- what a Stripe PaymentIntent status means for us -------------------------------

_INTENT_STATUS: dict[str, PaymentStatus] = {
    "requires_action": S.REQUIRES_ACTION,
    "processing": S.PROCESSING,
    "requires_capture": S.AUTHORIZED,
    "succeeded": S.CAPTURED,
    "canceled": S.CANCELED,
    # After a confirmation attempt, these mean the attempt did not go through.
    "requires_payment_method": S.FAILED,
    "requires_confirmation": S.FAILED,
}


def status_from_intent(intent_status: str) -> PaymentStatus:
    """Map a confirmed PaymentIntent's ``status`` to ours."""
    try:
        return _INTENT_STATUS[intent_status]
    except KeyError:
        raise ValueError(f"unknown PaymentIntent status {intent_status!r}") from None


# --- operations requested through our API -----------------------------------------


@dataclass(frozen=True, slots=True)
class RefundPlan:
    """The outcome of asking for a refund: amount and resulting status."""

    amount_minor: int
    status_after: PaymentStatus
    refunded_after: int


def check_capture(current: PaymentStatus) -> None:
    """Raise unless a capture may be sent to Stripe."""
    if current is not S.AUTHORIZED:
        raise TransitionError(current, "capture")


def check_cancel(current: PaymentStatus) -> None:
    """Raise unless the payment may be canceled (nothing has been captured)."""
    if S.CANCELED not in TRANSITIONS[current]:
        raise TransitionError(current, "cancel")


class RefundError(ValueError):
    """A refund amount the payment cannot cover."""

    code = "refund_exceeds_amount"


def plan_refund(
    current: PaymentStatus, amount_minor: int, refunded_minor: int, requested: int | None
) -> RefundPlan:
    """Decide a refund: full remaining amount when ``requested`` is None."""
    if current not in (S.CAPTURED, S.PARTIALLY_REFUNDED):
        raise TransitionError(current, "refund")
    remaining = amount_minor - refunded_minor
    amount = remaining if requested is None else requested
    if amount <= 0 or amount > remaining:
        raise RefundError(f"refund of {amount} exceeds the refundable {remaining} minor units")
    after = refunded_minor + amount
    status = S.REFUNDED if after == amount_minor else S.PARTIALLY_REFUNDED
    return RefundPlan(amount, status, after)
