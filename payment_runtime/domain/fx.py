"""Conversion into one reporting currency from a rate table, for metrics and limits only.

A charged amount is never converted: Stripe, the database and the outbox events carry the
payment's own amount and currency. :func:`to_reporting` is what metrics (and limits) use.

The table is a JSON object (the key of a ConfigMap the operator mounts read-only), mapping
ISO 4217 codes to the value of **one major unit** of that currency in the reporting
currency, as a decimal string (or a JSON number, read as a decimal, never as a float)::

    {"EUR": "1", "USD": "0.92", "JPY": "0.0061", "BHD": "2.44"}

with the reporting currency EUR. Rules (:func:`parse_table`): every key a known ISO 4217
code, every rate a finite decimal above 0, the reporting currency's own rate (if listed)
exactly 1. A violation is a :class:`RateTableError` naming the entry.

Rounding: the exact product ``amount / 10**exponent(source) * rate`` is rounded once, half
to even (banker's rounding, ``decimal.ROUND_HALF_EVEN``), to the reporting currency's minor
unit. A tiny amount can round to 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from payment_runtime.domain.money import Currency, Money, MoneyError, currency

#: Decimal digits of the conversion: an 8-digit amount times a rate of at most
#: :data:`MAX_RATE_DIGITS` digits is exact within it.
_PRECISION = 64
MAX_RATE_DIGITS = 40


class RateTableError(ValueError):
    """The rate table (or the reporting currency) is invalid; the message names the entry."""


class NoRate(LookupError):
    """The table has no rate for a currency."""

    def __init__(self, code: str) -> None:
        super().__init__(f"no exchange rate for {code}")
        self.code = code


@dataclass(frozen=True)
class RateTable:
    """Rates into ``reporting``: one major unit of a currency is worth ``rates[code]``."""

    reporting: Currency
    rates: Mapping[str, Decimal] = field(default_factory=dict)

    def rate(self, code: str) -> Decimal:
        """The rate of ``code`` (1 for the reporting currency itself)."""
        if code == self.reporting.code:
            return Decimal(1)
        try:
            return self.rates[code]
        except KeyError:
            raise NoRate(code) from None


def _rate(code: str, raw: object) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise RateTableError(f"rate of {code}: {raw!r} is not a decimal number")
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        raise RateTableError(f"rate of {code}: {raw!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise RateTableError(f"rate of {code}: {raw!r} must be a finite number above 0")
    if len(value.as_tuple().digits) > MAX_RATE_DIGITS:
        raise RateTableError(f"rate of {code}: more than {MAX_RATE_DIGITS} digits")
    return value


def parse_table(text: str, reporting_code: str) -> RateTable:
    """Read and validate a rate table (see the module docstring)."""
    try:
        reporting = currency(reporting_code)
    except MoneyError as exc:
        raise RateTableError(f"reporting currency: {exc.message}") from None
    try:
        document = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except ValueError as exc:
        raise RateTableError(f"not a JSON document: {exc}") from None
    if not isinstance(document, dict):
        raise RateTableError("the rate table must be a JSON object of ISO code -> rate")
    rates: dict[str, Decimal] = {}
    for key, raw in document.items():
        try:
            code = currency(key).code
        except MoneyError:
            raise RateTableError(f"entry {key!r}: not a known ISO 4217 currency code") from None
        if code != key:
            raise RateTableError(f"entry {key!r}: write the code in upper case ({code})")
        value = _rate(code, raw)
        if code == reporting.code and value != 1:
            raise RateTableError(
                f"entry {code}: the reporting currency's own rate must be 1, not {raw}"
            )
        rates[code] = value
    return RateTable(reporting, rates)


def to_reporting(money: Money, table: RateTable) -> Money:
    """``money`` in the reporting currency, rounded half-even to its minor unit.

    Raises :class:`NoRate` when the table has no rate for ``money``'s currency.
    """
    source, target = money.currency, table.reporting
    rate = table.rate(source.code)
    # Enough digits that the product is exact: the only rounding is the documented one.
    with localcontext(prec=_PRECISION):
        exact = Decimal(money.amount_minor).scaleb(target.exponent - source.exponent) * rate
        minor = exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return Money(int(minor), target)


def major_units(money: Money) -> Decimal:
    """``money`` as an exact decimal of major units (``12.345`` for 12345 fils)."""
    return Decimal(money.amount_minor).scaleb(-money.currency.exponent)
