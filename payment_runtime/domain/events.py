"""Integration events written to the transactional outbox and published to Kafka.

Each event has its own id (consumers deduplicate on it) and is keyed by payment id, so
all events of one payment land on one partition, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

TOPIC = "payment.events"
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One fact about a payment, as consumers see it."""

    event_id: str
    event_type: str
    payment_id: str
    occurred_at: datetime
    data: dict[str, Any]

    def to_payload(self) -> dict[str, Any]:
        """The JSON document published as the Kafka message value."""
        return {
            "id": self.event_id,
            "type": self.event_type,
            "schema_version": SCHEMA_VERSION,
            "payment_id": self.payment_id,
            "occurred_at": self.occurred_at.isoformat(),
            "data": self.data,
        }


def event_type_for(status: str) -> str:
    """The event type announcing that a payment reached ``status``."""
    return f"payment.{status}"
