"""Pure domain rules: money, state machine, webhooks ordering, idempotency, providers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment_runtime.domain import idempotency, payments, providers, webhooks
from payment_runtime.domain.idempotency import Action, IdempotencyError, RecoveryPoint, StoredKey
from payment_runtime.domain.money import MAX_AMOUNT_MINOR, Money, MoneyError
from payment_runtime.domain.payments import PaymentStatus as S

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("amount", "code", "text"),
    [(1250, "EUR", "12.50 EUR"), (500, "jpy", "500 JPY"), (1234, "KWD", "1.234 KWD")],
)
def test_money_minor_units(amount, code, text):
    assert Money.of(amount, code).format() == text


@pytest.mark.parametrize(
    ("amount", "code", "error"),
    [
        (0, "EUR", "invalid_amount"),
        (-5, "EUR", "invalid_amount"),
        (True, "EUR", "invalid_amount"),
        (MAX_AMOUNT_MINOR + 1, "EUR", "amount_too_large"),
        (10**30, "USD", "amount_too_large"),
        (100, "XXX", "unknown_currency"),
        (100, "EURO", "unknown_currency"),
    ],
)
def test_money_refusals(amount, code, error):
    with pytest.raises(MoneyError) as exc:
        Money.of(amount, code)
    assert exc.value.code == error


def test_state_graph_is_acyclic_apart_from_partial_refunds():
    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in payments.TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    for status in S:
        if status is not S.PARTIALLY_REFUNDED:
            assert status not in reachable(status), status
    assert {S.REFUNDED, S.CANCELED} == payments.TERMINAL


@given(st.lists(st.sampled_from(sorted(webhooks.HANDLED_TYPES - {"charge.refunded"})), max_size=12))
def test_any_event_order_never_moves_backwards(types):
    status, history = S.PENDING, [S.PENDING]
    for t in types:
        d = webhooks.decide(status, 0, webhooks.target_of(t, {"id": "pi_1"}))
        if d.verdict is webhooks.Verdict.APPLY:
            assert payments.can_transition(status, d.status)
            status = d.status
            history.append(status)
    # No status ever comes back after leaving it.
    assert len(history) == len(set(history))


def test_refund_amount_only_grows():
    t = webhooks.target_of(
        "charge.refunded", {"payment_intent": "pi", "amount": 1000, "amount_refunded": 300}
    )
    assert webhooks.decide(S.CAPTURED, 0, t).status is S.PARTIALLY_REFUNDED
    assert webhooks.decide(S.PARTIALLY_REFUNDED, 500, t).verdict is webhooks.Verdict.STALE
    full = webhooks.target_of(
        "charge.refunded", {"payment_intent": "pi", "amount": 1000, "amount_refunded": 1000}
    )
    assert webhooks.decide(S.PARTIALLY_REFUNDED, 500, full).amount_refunded == 1000
    assert webhooks.target_of("customer.created", {"id": "cus"}) is None


def test_refund_plans():
    assert payments.plan_refund(S.CAPTURED, 1000, 0, None).amount_minor == 1000
    plan = payments.plan_refund(S.PARTIALLY_REFUNDED, 1000, 400, 100)
    assert (plan.status_after, plan.refunded_after) == (S.PARTIALLY_REFUNDED, 500)
    with pytest.raises(payments.RefundError):
        payments.plan_refund(S.CAPTURED, 1000, 900, 200)
    with pytest.raises(payments.TransitionError):
        payments.plan_refund(S.AUTHORIZED, 1000, 0, None)
    with pytest.raises(payments.TransitionError):
        payments.check_capture(S.CAPTURED)


def test_fingerprint_ignores_key_order_not_values():
    a = idempotency.fingerprint("POST", "/p", {"amount": 1, "currency": "EUR"})
    assert a == idempotency.fingerprint("post", "/p", {"currency": "EUR", "amount": 1})
    assert a != idempotency.fingerprint("POST", "/p", {"amount": 2, "currency": "EUR"})
    assert a != idempotency.fingerprint("POST", "/q", {"amount": 1, "currency": "EUR"})


def test_key_decisions():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    timeout = timedelta(seconds=60)
    fp = "f"
    done = StoredKey(fp, RecoveryPoint.FINISHED, None)
    assert idempotency.decide(done, fp, now, timeout) is Action.REPLAY
    with pytest.raises(IdempotencyError) as exc:
        idempotency.decide(done, "other", now, timeout)
    assert (exc.value.status, exc.value.code) == (422, "idempotency_key_reused")
    busy = StoredKey(fp, RecoveryPoint.RESOURCE_CREATED, now - timedelta(seconds=5))
    with pytest.raises(IdempotencyError) as exc:
        idempotency.decide(busy, fp, now, timeout)
    assert exc.value.status == 409
    stale = StoredKey(fp, RecoveryPoint.RESOURCE_CREATED, now - timedelta(seconds=61))
    assert idempotency.decide(stale, fp, now, timeout) is Action.PROCEED
    assert idempotency.stripe_key("capture", "abc") == idempotency.stripe_key("capture", "abc")
    for bad in (None, "", "has space", "x" * 256):
        with pytest.raises(IdempotencyError):
            idempotency.validate_key(bad)


def test_providers():
    assert providers.methods_for("nl") == ["card", "sepa_debit", "ideal"]
    assert "sepa_debit" not in providers.methods_for("US")
    with pytest.raises(providers.CountryError) as exc:
        providers.methods_for("ZZ")
    assert exc.value.status == 404
    with pytest.raises(providers.CountryError) as exc:
        providers.methods_for("N1")
    assert exc.value.status == 400


def test_an_event_belongs_to_a_payment_by_intent_or_else_by_amount_and_currency():
    from payment_runtime.domain.webhooks import belongs_to, target_of

    target = target_of(
        "payment_intent.succeeded", {"id": "pi_1", "amount": 500, "currency": "eur"}
    )
    assert target is not None
    assert belongs_to(target, "pi_1", 1, "USD")  # the intent decides when it is known
    assert not belongs_to(target, "pi_2", 500, "EUR")
    assert belongs_to(target, None, 500, "EUR ")  # char(3) comes back padded
    assert not belongs_to(target, None, 501, "EUR")
    assert not belongs_to(target, None, 500, "USD")
    bare = target_of("payment_intent.succeeded", {"id": "pi_1", "amount": True})
    assert bare is not None and not belongs_to(bare, None, 1, "EUR")
