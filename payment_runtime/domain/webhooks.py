"""How Stripe webhook events move payments, and how late events are refused.

Stripe does not guarantee delivery order, and retries deliveries. An event is applied
only if it moves the payment forward (see :mod:`payments`); the refunded amount only
grows. Duplicate deliveries are filtered before this by event id.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payment_runtime.domain.payments import PaymentStatus, can_transition
from payment_runtime.domain.stripe_amounts import from_stripe

S = PaymentStatus

_EVENT_TARGET: dict[str, PaymentStatus] = {
    "payment_intent.requires_action": S.REQUIRES_ACTION,
    "payment_intent.processing": S.PROCESSING,
    "payment_intent.payment_failed": S.FAILED,
    "payment_intent.amount_capturable_updated": S.AUTHORIZED,
    "payment_intent.succeeded": S.CAPTURED,
    "payment_intent.canceled": S.CANCELED,
}

HANDLED_TYPES = frozenset([*_EVENT_TARGET, "charge.refunded"])


class Verdict(enum.StrEnum):
    """What to do with one verified, first-seen event."""

    APPLY = "apply"
    STALE = "stale"  # would move the payment backwards or sideways: ignored
    IGNORED = "ignored"  # an event type we do not act on
    MISMATCH = "mismatch"  # names our payment, but is about another PaymentIntent: ignored


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Which PaymentIntent an event concerns, and the state it reports."""

    intent_id: str
    status: PaymentStatus | None
    amount_refunded: int | None = None
    amount: int | None = None
    currency: str | None = None  # upper case, as we store it


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict, and the status/refunded amount to store when applying."""

    verdict: Verdict
    status: PaymentStatus | None = None
    amount_refunded: int | None = None


def _ours(raw: object, currency: str | None) -> int | None:
    if not isinstance(raw, int) or isinstance(raw, bool):
        return None
    return raw if currency is None else from_stripe(raw, currency)


def target_of(event_type: str, obj: Mapping[str, Any]) -> WebhookTarget | None:
    """Extract the PaymentIntent id and reported state from an event's ``data.object``."""
    raw_amount, raw_currency = obj.get("amount"), obj.get("currency")
    currency = raw_currency.upper() if isinstance(raw_currency, str) else None
    # Stripe's amounts, in our ISO 4217 minor units (ISK: Stripe's 500 is our 5).
    amount = _ours(raw_amount, currency)
    if event_type in _EVENT_TARGET:
        intent_id = obj.get("id")
        if not isinstance(intent_id, str):
            return None
        return WebhookTarget(intent_id, _EVENT_TARGET[event_type], None, amount, currency)
    if event_type == "charge.refunded":
        intent_id = obj.get("payment_intent")
        refunded = _ours(obj.get("amount_refunded"), currency)
        if not (isinstance(intent_id, str) and amount is not None):
            return None
        if refunded is None:
            return None
        status = S.REFUNDED if refunded >= amount else S.PARTIALLY_REFUNDED
        return WebhookTarget(intent_id, status, refunded, amount, currency)
    return None


def belongs_to(
    target: WebhookTarget, intent_id: str | None, amount_minor: int, currency: str
) -> bool:
    """Whether an event about ``target`` may move our payment.

    The lookup by ``metadata.payment_id`` trusts text that whoever created the intent
    wrote, so it is checked: the PaymentIntent must be the payment's own; while we do not
    know the payment's intent yet (the create call has not returned), the event's amount
    and currency must be the payment's.
    """
    if intent_id is not None:
        return target.intent_id == intent_id
    return target.amount == amount_minor and target.currency == currency.strip().upper()


def decide(current: PaymentStatus, refunded_now: int, target: WebhookTarget) -> Decision:
    """Apply ``target`` to a payment in ``current`` state only if it moves it forward."""
    if target.status is None:
        return Decision(Verdict.IGNORED)
    if target.status is S.PARTIALLY_REFUNDED and current is S.PARTIALLY_REFUNDED:
        # Same status: forward only if more money has been refunded.
        if target.amount_refunded is not None and target.amount_refunded > refunded_now:
            return Decision(Verdict.APPLY, target.status, target.amount_refunded)
        return Decision(Verdict.STALE)
    if not can_transition(current, target.status):
        return Decision(Verdict.STALE)
    refunded = refunded_now
    if target.amount_refunded is not None:
        refunded = max(refunded_now, target.amount_refunded)
    return Decision(Verdict.APPLY, target.status, refunded)
