"""Link to the schema registry (``schema_registry.py``), loaded by name so the broker runs without it.

The registry module owns the SchemaRegistry gRPC service, reference resolution and the per-topic
validation policy; the broker only calls the four methods of :class:`RegistryLike`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import grpc

from danube_embedded_broker.errors import BrokerError
from danube_embedded_broker.wire import pb

log = logging.getLogger(__name__)

REGISTRY_MODULE = "danube_embedded_broker.schema_registry"


class RegistryLike(Protocol):
    def servicer(self) -> Any: ...
    def resolve_reference(self, ref: pb.SchemaReference) -> tuple[int, int]: ...
    def check_publish(
        self, topic: str, payload: bytes, schema_id: int | None, schema_version: int | None = None
    ) -> str | None: ...
    def close(self) -> None: ...


class SchemaLink:
    """The registry, or nothing when its module is not installed (then schema references fail clearly)."""

    def __init__(self, data_dir: Path | None, topic_exists: Callable[[str], bool] | None = None) -> None:
        self.registry: RegistryLike | None = None
        self._error_type: type[BaseException] | None = None
        try:
            module = importlib.import_module(REGISTRY_MODULE)
        except ImportError as exc:
            # Absent (or broken) registry: the broker still serves; schema references are refused.
            level = logging.WARNING if getattr(exc, "name", None) == REGISTRY_MODULE else logging.ERROR
            log.log(level, "schema registry unavailable (%s): schema references are refused", exc)
            return
        try:
            self.registry = module.SchemaRegistry(data_dir, topic_exists=topic_exists)
        except Exception:
            log.exception("schema registry failed to start: schema references are refused")
            return
        self._error_type = getattr(module, "SchemaRegistryError", None)

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """Register the SchemaRegistry service; a registry that fails here is logged and disabled."""
        if self.registry is None:
            return
        from danube_embedded_broker.wire import schema_pb_grpc

        try:
            servicer = self.registry.servicer()
        except Exception:
            log.exception("schema registry servicer unavailable: schema references are refused")
            self.registry = None
            return
        schema_pb_grpc.add_SchemaRegistryServicer_to_server(  # type: ignore[no-untyped-call, unused-ignore]
            servicer, server
        )

    def _translate(self, exc: BaseException) -> BrokerError | None:
        if self._error_type is not None and isinstance(exc, self._error_type):
            code = getattr(exc, "code", grpc.StatusCode.INTERNAL)
            if not isinstance(code, grpc.StatusCode):
                code = grpc.StatusCode.INTERNAL
            return BrokerError(code, str(getattr(exc, "message", None) or exc))
        return None

    def resolve(self, ref: pb.SchemaReference) -> tuple[int, int]:
        """``(schema_id, version)``; raises ``BrokerError`` with the registry's status code."""
        if self.registry is None:
            raise BrokerError(grpc.StatusCode.UNIMPLEMENTED, "this broker has no schema registry")
        try:
            return self.registry.resolve_reference(ref)
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from exc

    def bind_topic(self, topic: str, subject: str) -> None:
        """A producer's subject becomes the topic's subject when it has none (real broker behaviour)."""
        bind = getattr(self.registry, "bind_topic_subject", None)
        if bind is not None:
            bind(topic, subject)

    def check_publish(
        self, topic: str, payload: bytes, schema_id: int | None, schema_version: int | None = None
    ) -> None:
        """Raises ``BrokerError(PERMISSION_DENIED)`` when the topic's validation policy rejects it."""
        if self.registry is None:
            return
        try:
            reason = self.registry.check_publish(topic, payload, schema_id, schema_version)
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from exc
        if reason is not None:
            raise BrokerError(grpc.StatusCode.PERMISSION_DENIED, f"rejected by the schema policy: {reason}")

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()
