"""ISO 4217 minor units -> Stripe's amounts, table-driven (Stripe's currency rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment_runtime.domain import webhooks
from payment_runtime.domain.money import CURRENCY_EXPONENTS, Money, MoneyError
from payment_runtime.domain.stripe_amounts import (
    STRIPE_UNSUPPORTED,
    StripeAmount,
    from_stripe,
    to_stripe,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("amount", "code", "stripe", "display"),
    [
        (1250, "EUR", StripeAmount(1250, "eur"), "12.50 EUR"),
        (1250, "JPY", StripeAmount(1250, "jpy"), "1250 JPY"),  # zero-decimal: yen
        (1, "KRW", StripeAmount(1, "krw"), "1 KRW"),
        (12340, "BHD", StripeAmount(12340, "bhd"), "12.340 BHD"),  # three-decimal, ends in 0
        (10, "KWD", StripeAmount(10, "kwd"), "0.010 KWD"),
        (5, "ISK", StripeAmount(500, "isk"), "5 ISK"),  # ISO 0, Stripe two-decimal "00"
        (5, "UGX", StripeAmount(500, "ugx"), "5 UGX"),
        (50000, "MGA", StripeAmount(500, "mga"), "500.00 MGA"),  # ISO 2, Stripe 0
        (1001, "HUF", StripeAmount(1001, "huf"), "10.01 HUF"),  # payouts only are whole
        (1001, "TWD", StripeAmount(1001, "twd"), "10.01 TWD"),
        (999_999, "ISK", StripeAmount(99_999_900, "isk"), "999999 ISK"),
    ],
)
def test_representable_amounts(amount, code, stripe, display):
    money = Money.of(amount, code)
    assert to_stripe(money) == stripe
    assert money.format() == display
    assert from_stripe(stripe.amount, code) == amount  # webhooks map back exactly


@pytest.mark.parametrize(
    ("amount", "code", "error"),
    [
        (12345, "BHD", "amount_not_representable"),  # 12.345 BHD: Stripe wants the last 0
        (1, "JOD", "amount_not_representable"),
        (5, "KWD", "amount_not_representable"),
        (12341, "OMR", "amount_not_representable"),
        (99, "TND", "amount_not_representable"),
        (50050, "MGA", "amount_not_representable"),  # 500.50 MGA: whole ariary only
        (1_000_000, "ISK", "amount_too_large"),  # Stripe's 100_000_000 has nine digits
        (1000, "IQD", "currency_not_supported"),
        (1000, "LYD", "currency_not_supported"),
    ],
)
def test_unrepresentable_amounts_are_refused_with_a_code(amount, code, error):
    with pytest.raises(MoneyError) as exc:
        to_stripe(Money.of(amount, code))
    assert exc.value.code == error
    assert Money.of(amount, code).format().split()[1] in exc.value.message


@given(
    st.sampled_from(sorted(set(CURRENCY_EXPONENTS) - STRIPE_UNSUPPORTED)),
    st.integers(min_value=1, max_value=99_999_999),
)
def test_every_accepted_amount_round_trips(code, amount):
    try:
        stripe = to_stripe(Money.of(amount, code))
    except MoneyError as exc:
        assert exc.code in {"amount_not_representable", "amount_too_large"}
        return
    assert 1 <= stripe.amount <= 99_999_999
    assert stripe.currency == code.lower()
    assert from_stripe(stripe.amount, code) == amount


def test_from_stripe_refuses_what_has_no_iso_amount():
    assert from_stripe(550, "ISK") is None  # 5.50 ISK: not a whole krona
    assert from_stripe(100, "XXX") is None


def test_webhook_amounts_are_read_in_iso_minor_units():
    target = webhooks.target_of(
        "charge.refunded",
        {"payment_intent": "pi_1", "amount": 500, "amount_refunded": 200, "currency": "isk"},
    )
    assert target is not None
    assert (target.amount, target.amount_refunded, target.currency) == (5, 2, "ISK")
    assert webhooks.belongs_to(target, None, 5, "ISK")
    assert not webhooks.belongs_to(target, None, 500, "ISK")
