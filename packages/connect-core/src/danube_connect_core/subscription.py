"""Subscription types a sink mapping can ask for."""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["SubscriptionType"]


class SubscriptionType(enum.Enum):
    """How the broker spreads a subscription's messages over its consumers.

    Accepted spellings in TOML: ``"Shared"``, ``"shared"``, ``"KeyShared"``, ``"key_shared"`` and so on.
    """

    EXCLUSIVE = "Exclusive"
    SHARED = "Shared"
    FAILOVER = "Failover"
    KEY_SHARED = "KeyShared"

    @classmethod
    def _missing_(cls, value: object) -> SubscriptionType | None:
        if isinstance(value, str):
            norm = value.replace("_", "").replace("-", "").lower()
            for member in cls:
                if member.value.lower() == norm:
                    return member
        return None

    def to_client(self) -> Any:
        """The matching member of the client's own ``SubscriptionType`` enum."""
        from danube_connect_core.client import SubscriptionType as ClientSubscriptionType

        return ClientSubscriptionType[self.name]
