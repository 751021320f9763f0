"""Money in minor units and the ISO 4217 currencies the runtime accepts.

Amounts are integers of the currency's minor unit (cents for EUR, yen for JPY,
fils for KWD); a float never represents money here.
"""

from __future__ import annotations

from dataclasses import dataclass


def _codes(text: str) -> list[str]:
    return text.split()


#: ISO 4217 active currency codes mapped to their minor-unit exponent.
#: Codes not listed with 0 or 3 use 2 decimal places.
_ZERO_DECIMAL = frozenset(
    _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF")
)
_THREE_DECIMAL = frozenset(_codes("BHD IQD JOD KWD LYD OMR TND"))
_TWO_DECIMAL = frozenset(
    _codes(
        """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD
    KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
    NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD
    SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS
    VES WST XCD YER ZAR ZMW ZWG
    """
    )
)

CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMAL, 2),
    **dict.fromkeys(_ZERO_DECIMAL, 0),
    **dict.fromkeys(_THREE_DECIMAL, 3),
}

#: The largest amount a single charge may carry, in minor units (Stripe allows 8 digits).
MAX_AMOUNT_MINOR = 99_999_999


class MoneyError(ValueError):
    """An amount or currency the runtime refuses; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency and the number of decimal places of its minor unit."""

    code: str
    exponent: int


def currency(code: str) -> Currency:
    """Look a currency up by its ISO 4217 code (case-insensitive)."""
    normalized = code.strip().upper()
    exponent = CURRENCY_EXPONENTS.get(normalized)
    if exponent is None or len(normalized) != 3:
        raise MoneyError("unknown_currency", f"{code!r} is not a supported ISO 4217 currency")
    return Currency(normalized, exponent)


@dataclass(frozen=True, slots=True)
class Money:
    """A positive amount in the minor unit of one currency."""

    amount_minor: int
    currency: Currency

    @classmethod
    def of(cls, amount_minor: int, currency_code: str) -> Money:
        """Build a validated amount: positive, integral, at most ``MAX_AMOUNT_MINOR``."""
        cur = currency(currency_code)
        # bool is an int subclass; True is not an amount.
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
            raise MoneyError("invalid_amount", "amount must be an integer of minor units")
        if amount_minor <= 0:
            raise MoneyError("invalid_amount", "amount must be greater than zero")
        if amount_minor > MAX_AMOUNT_MINOR:
            raise MoneyError(
                "amount_too_large", f"amount must be at most {MAX_AMOUNT_MINOR} minor units"
            )
        return cls(amount_minor, cur)

    def format(self) -> str:
        """Human-readable decimal form, e.g. ``12.50 EUR`` (for logs and receipts)."""
        exp = self.currency.exponent
        if exp == 0:
            return f"{self.amount_minor} {self.currency.code}"
        whole, frac = divmod(self.amount_minor, 10**exp)
        return f"{whole}.{frac:0{exp}d} {self.currency.code}"
