"""Request bodies, validated with pydantic; unknown fields are refused."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from payment_runtime.domain.money import MAX_AMOUNT_MINOR

#: Free text: no control characters but tab and line breaks (PostgreSQL refuses NUL).
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class CreatePayment(BaseModel):
    """``POST /api/v1/payments``: an amount in minor units and a Stripe PaymentMethod id."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    amount: StrictInt = Field(description="minor units (cents), 1..99999999")
    currency: Annotated[str, Field(min_length=3, max_length=3, description="ISO 4217 code")]
    customer: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
    payment_method: Annotated[
        str,
        Field(
            min_length=3,
            max_length=255,
            pattern=r"^pm_[A-Za-z0-9_]+$",
            description="a Stripe PaymentMethod id; card numbers are never accepted",
        ),
    ]
    description: Annotated[str | None, Field(max_length=500, pattern=TEXT_PATTERN)] = None


class CreateRefund(BaseModel):
    """``POST /api/v1/payments/{id}/refunds``: the full remaining amount when omitted."""

    model_config = ConfigDict(extra="forbid")

    amount: Annotated[StrictInt | None, Field(ge=1, le=MAX_AMOUNT_MINOR)] = None
    reason: Annotated[str | None, Field(max_length=200, pattern=TEXT_PATTERN)] = None


class Empty(BaseModel):
    """Capture and cancel take no parameters."""

    model_config = ConfigDict(extra="forbid")
