"""Which payment methods we offer customers of a given country.

Cards work everywhere we sell; local methods follow Stripe's availability by country.
"""

from __future__ import annotations

import re


def _codes(text: str) -> list[str]:
    return text.split()


_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")

SEPA = frozenset(
    _codes(
        "AT BE BG CH CY CZ DE DK EE ES FI FR GB GR HR HU IE IS IT LI LT LU LV MT NL NO PL PT "
        "RO SE SI SK"
    )
)
_LOCAL: dict[str, tuple[str, ...]] = {
    "NL": ("ideal",),
    "BE": ("bancontact",),
    "AT": ("eps",),
    "PL": ("blik", "p24"),
    "DE": ("giropay",),
    "GB": ("bacs_debit",),
    "US": ("us_bank_account",),
}
SUPPORTED = SEPA | frozenset({"US", "CA", "AU", "NZ", "JP", "SG"})


class CountryError(ValueError):
    """A country code that is malformed (400) or where we do not operate (404)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def methods_for(country: str) -> list[str]:
    """Payment methods for an ISO 3166-1 alpha-2 country code."""
    normalized = country.upper()
    if not _COUNTRY_RE.match(normalized):
        raise CountryError("invalid_country", 400, "country must be an ISO 3166-1 alpha-2 code")
    if normalized not in SUPPORTED:
        raise CountryError("unsupported_country", 404, f"payments are not offered in {normalized}")
    methods = ["card"]
    if normalized in SEPA and normalized != "GB":
        methods.append("sepa_debit")
    methods.extend(_LOCAL.get(normalized, ()))
    return methods
