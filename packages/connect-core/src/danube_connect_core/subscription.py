"""The subscription types: how the broker spreads a subscription's messages over its consumers.

One enum for the whole SDK: sink mappings parse it from TOML, the broker client sends its :attr:`wire`
value. It imports nothing, so configuration code can use it without loading the client.
"""

from __future__ import annotations

import enum

__all__ = ["SubscriptionType"]


class SubscriptionType(enum.Enum):
    """How the broker spreads a subscription's messages over its consumers.

    Values are the names in TOML and logs. Accepted spellings: ``"Shared"``, ``"shared"``, ``"KeyShared"``,
    ``"key_shared"`` and so on; the wire number (``0`` to ``3``) is accepted too. Anything else raises
    ValueError.
    """

    EXCLUSIVE = "Exclusive"
    SHARED = "Shared"
    FAILOVER = "Failover"
    KEY_SHARED = "KeyShared"

    @property
    def wire(self) -> int:
        """The value of the wire enum ``ConsumerRequest.SubscriptionType`` (docs/wire-contract.md)."""
        return _WIRE[self]

    @classmethod
    def _missing_(cls, value: object) -> SubscriptionType | None:
        if isinstance(value, str):
            norm = value.replace("_", "").replace("-", "").lower()
            for member in cls:
                if member.value.lower() == norm:
                    return member
        elif isinstance(value, int) and not isinstance(value, bool):
            for member, number in _WIRE.items():
                if number == value:
                    return member
        return None


_WIRE = {
    SubscriptionType.EXCLUSIVE: 0,
    SubscriptionType.SHARED: 1,
    SubscriptionType.FAILOVER: 2,
    SubscriptionType.KEY_SHARED: 3,
}
