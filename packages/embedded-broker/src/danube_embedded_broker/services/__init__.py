"""gRPC servicers: thin adapters from the Danube wire contract to the broker core."""

from danube_embedded_broker.services.consumer import ConsumerService
from danube_embedded_broker.services.discovery import DiscoveryService
from danube_embedded_broker.services.health import HealthService
from danube_embedded_broker.services.producer import ProducerService

__all__ = ["ConsumerService", "DiscoveryService", "HealthService", "ProducerService"]
