"""Schema registry of the embedded broker (the ``danube_schema.SchemaRegistry`` gRPC service).

Behaviour follows the Danube broker v0.15 (see ``docs`` in each module for what is matched and where
this implementation deliberately differs):

* ``model``: schema types, parsing, fingerprints and the wrapped ``schema_definition`` the real broker
  returns;
* ``compatibility``: structural compatibility checks (JSON Schema, Avro);
* ``store``: :class:`SchemaRegistry`, the state (subjects, versions, per-topic config), persistence and
  publish-time validation used by the broker;
* ``servicer``: the grpc.aio servicer.
"""

from __future__ import annotations

from danube_embedded_broker.schema_registry.model import SchemaRegistryError
from danube_embedded_broker.schema_registry.store import SchemaRegistry, TopicSchemaConfig

__all__ = ["SchemaRegistry", "SchemaRegistryError", "TopicSchemaConfig"]
