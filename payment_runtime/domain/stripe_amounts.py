"""ISO 4217 minor units <-> the integer ``amount`` Stripe's API takes, exactly, or a refusal.

The payment API takes amounts in the ISO 4217 minor unit of the currency (:mod:`.money`).
Stripe mostly uses the same unit, with these documented exceptions (Stripe's "Supported
currencies" page: zero-decimal currencies, three-decimal currencies, special cases):

- **ISK, UGX**: zero-decimal in ISO 4217, but Stripe keeps them two-decimal for backwards
  compatibility and requires the decimals to be ``00``: 5 ISK is ``amount=500``. Every whole
  amount is representable; the Stripe amount is 100 times ours.
- **MGA**: two-decimal in ISO 4217, zero-decimal at Stripe: only whole ariary are
  representable (our minor amount a multiple of 100); the Stripe amount is ours / 100.
- **BHD, JOD, KWD, OMR, TND** (three-decimal): the same unit, but Stripe requires the last
  digit to be 0 (``12.345 BHD`` is not chargeable, ``12.340 BHD`` is).
- IQD and LYD (three-decimal in ISO 4217) are no Stripe presentment currency: refused.
- HUF and TWD are zero-decimal at Stripe for *payouts* only; charges and refunds take two
  decimals, so they need nothing here.

Stripe's 8-digit limit applies to Stripe's amount. Stripe's minimum charge depends on the
account's settlement currency (the amount must convert to at least e.g. 0.50 USD), which the
runtime does not know: that refusal is Stripe's (``amount_too_small``, mapped to a 422 by the
service), not guessed here.

Pure functions; every refusal is a :class:`~payment_runtime.domain.money.MoneyError` with a
machine-readable code (``amount_not_representable``, ``amount_too_large``,
``currency_not_supported``).
"""

from __future__ import annotations

from dataclasses import dataclass

from payment_runtime.domain.money import Money, MoneyError, currency

#: Stripe amount = ISO minor amount * 10**shift (a negative shift divides, exactly).
STRIPE_EXPONENT_SHIFT: dict[str, int] = {"ISK": 2, "UGX": 2, "MGA": -2}
#: Stripe's three-decimal currencies: the last digit of the amount must be 0.
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
#: ISO 4217 currencies Stripe does not charge in.
STRIPE_UNSUPPORTED = frozenset({"IQD", "LYD", "UYI"})
#: Stripe's largest ``amount`` (eight digits).
STRIPE_MAX_AMOUNT = 99_999_999


@dataclass(frozen=True, slots=True)
class StripeAmount:
    """What goes into a Stripe request: ``amount`` and the lower-case ``currency``."""

    amount: int
    currency: str


def _not_representable(money: Money, why: str) -> MoneyError:
    return MoneyError(
        "amount_not_representable",
        f"{money.format()} cannot be charged through Stripe: {why}",
    )


def to_stripe(money: Money) -> StripeAmount:
    """The Stripe amount of ``money``, or a :class:`MoneyError` if Stripe cannot carry it."""
    code = money.currency.code
    if code in STRIPE_UNSUPPORTED:
        raise MoneyError("currency_not_supported", f"Stripe does not charge in {code}")
    amount = money.amount_minor
    if code in STRIPE_THREE_DECIMAL and amount % 10:
        raise _not_representable(money, f"{code} amounts must end in 0 (a multiple of 0.010)")
    shift = STRIPE_EXPONENT_SHIFT.get(code, 0)
    factor: int = 10 ** abs(shift)
    if shift < 0:
        if amount % factor:
            raise _not_representable(money, f"Stripe charges {code} in whole units only")
        amount //= factor
    else:
        amount *= factor
    if amount > STRIPE_MAX_AMOUNT:
        raise MoneyError(
            "amount_too_large", f"{money.format()} exceeds Stripe's limit of 8 digits"
        )
    return StripeAmount(amount, code.lower())


def from_stripe(amount: int, currency_code: str) -> int | None:
    """Our ISO minor amount of a Stripe ``amount`` (from a webhook), or None if it has none
    (an unknown currency, or an ISK/UGX amount with non-zero decimals)."""
    try:
        code = currency(currency_code).code
    except MoneyError:
        return None
    shift = STRIPE_EXPONENT_SHIFT.get(code, 0)
    factor: int = 10 ** abs(shift)
    if shift > 0:
        return amount // factor if amount % factor == 0 else None
    return amount * factor

