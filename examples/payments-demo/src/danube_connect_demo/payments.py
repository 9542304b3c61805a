"""The demo's payment events and their JSON Schema (identical to ``schemas/payment.json``)."""

from __future__ import annotations

import random
import time
from typing import Any

__all__ = ["EVENTS", "PAYMENT_SCHEMA", "random_payment"]

EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF")

#: The schema the webhook validates against (a test keeps it equal to schemas/payment.json).
PAYMENT_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Payment event",
    "type": "object",
    "required": ["event", "amount", "currency", "timestamp"],
    "properties": {
        "event": {
            "type": "string",
            "enum": list(EVENTS),
        },
        "amount": {"type": "integer", "minimum": 0},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "timestamp": {"type": "integer"},
    },
}


def random_payment(rng: random.Random) -> dict[str, Any]:
    """One valid payment event with a random type, amount (cents) and currency."""
    return {
        "event": rng.choice(EVENTS),
        "amount": rng.randint(100, 100_000),
        "currency": rng.choice(CURRENCIES),
        "timestamp": int(time.time()),
    }
