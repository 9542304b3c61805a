"""Source side: register (or look up) a topic's schema and pick the version to publish with.

``auto_register = true`` registers the local definition (a no-op when identical to the latest version);
otherwise the subject must already exist. ``version_strategy``: "latest", ``{pinned = N}`` or
``{minimum = N}`` becomes the producer's SchemaReference, resolved once when the producer is created.
Local validation uses the local schema file when there is one, else the registry's definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from danube_connect_core.config import MinimumVersion, PinnedVersion, SchemaMapping
from danube_connect_core.errors import Fatal
from danube_connect_core.schema_codec import PayloadCodec, codec_for

__all__ = ["ResolvedSchema", "resolve_schema"]

_TRIVIAL_DEFINITIONS = {
    "string": b'{"type":"string"}',
    "bytes": b'{"type":"bytes"}',
    "number": b'{"type":"number"}',
}


@dataclass(frozen=True, slots=True)
class ResolvedSchema:
    mapping: SchemaMapping
    reference: Any  # client.SchemaReference
    codec: PayloadCodec


def _local_definition(mapping: SchemaMapping) -> bytes:
    if mapping.schema_file is not None:
        return mapping.schema_file.read_bytes()
    return _TRIVIAL_DEFINITIONS.get(mapping.schema_type, b"{}")


async def resolve_schema(client: Any, mapping: SchemaMapping) -> ResolvedSchema:
    """Register or look up ``mapping.subject``; raises Fatal when it cannot be used."""
    from danube_connect_core.client import DanubeError, SchemaReference

    registry = client.schema_registry
    definition = _local_definition(mapping)
    try:
        if mapping.auto_register:
            await registry.register(mapping.subject, mapping.schema_type, definition)
        else:
            latest = await registry.get_latest(mapping.subject)
            if mapping.schema_file is None:
                definition = latest.definition
    except DanubeError as exc:
        action = "register" if mapping.auto_register else "look up"
        raise Fatal(f"cannot {action} schema subject {mapping.subject!r}: {exc}") from exc

    strategy = mapping.version_strategy
    if isinstance(strategy, PinnedVersion):
        reference = SchemaReference.pinned(mapping.subject, strategy.pinned)
    elif isinstance(strategy, MinimumVersion):
        reference = SchemaReference.minimum(mapping.subject, strategy.minimum)
    else:
        reference = SchemaReference.latest(mapping.subject)
    try:
        codec = codec_for(mapping.schema_type, definition)
    except ValueError as exc:
        raise Fatal(f"schema {mapping.subject!r}: {exc}") from exc
    return ResolvedSchema(mapping, reference, codec)
