"""Danube embedded broker: a single-node, Danube-compatible broker for local runs, demos and tests.

Not a production replacement: production runs real Danube. See docs/wire-contract.md §2 and §4.
"""

from danube_embedded_broker.config import BrokerConfig
from danube_embedded_broker.server import EmbeddedBroker

__all__ = ["BrokerConfig", "EmbeddedBroker"]
