"""Exercise the official danube-client's SchemaRegistryClient.

    python schema_registry.py --url http://127.0.0.1:6650 --subject orders --type json_schema \
        --schema '{"type": "object", ...}' [--schema '<v2>' ...]

Registers each `--schema` in order (event `registered`: schema_id and the subject's latest version
after it), registers the first one again (event `reregistered`: must be the same schema_id, no new
version), then reports `latest` (GetLatestSchema), `by_id` (GetSchema of each version), `versions`
(ListVersions), `compatible` (CheckCompatibility of the last schema) and `done`.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import base_parser, build_client, close_client, emit, run
from danube import SchemaType


def info(schema: Any) -> dict[str, Any]:
    return {
        "schema_id": schema.schema_id,
        "subject": schema.subject,
        "version": schema.version,
        "schema_type": schema.schema_type,
        "fingerprint": schema.fingerprint,
        "definition": schema.schema_definition.decode("utf-8", errors="backslashreplace"),
    }


async def main(args: argparse.Namespace) -> None:
    client = await build_client(args.url)
    registry = client.schema()
    schema_type = SchemaType.parse(args.type)

    async def register(definition: str) -> int:
        schema_id: int = await (
            registry.register_schema(args.subject)
            .with_type(schema_type)
            .with_schema_data(definition.encode())
            .with_description("interop test")
            .with_created_by("danube-client-0.5.0")
            .execute()
        )
        return schema_id

    for definition in args.schema:
        schema_id = await register(definition)
        latest = await registry.get_latest_schema(args.subject)
        emit("registered", schema_id=schema_id, latest_version=latest.version)
    again = await register(args.schema[0])
    emit("reregistered", schema_id=again, versions=await registry.list_versions(args.subject))
    latest = await registry.get_latest_schema(args.subject)
    emit("latest", **info(latest))
    versions = await registry.list_versions(args.subject)
    emit("versions", versions=versions)
    for version in versions:
        emit("by_id", **info(await registry.get_schema_version(latest.schema_id, version)))
    ok, errors = await registry.check_compatibility(args.subject, args.schema[-1].encode(), schema_type)
    emit("compatible", is_compatible=ok, errors=errors)
    await close_client(client)
    emit("done")


if __name__ == "__main__":
    parser = base_parser(__doc__ or "")
    parser.add_argument("--subject", required=True)
    parser.add_argument("--type", default="json_schema")
    parser.add_argument("--schema", action="append", required=True, help="schema definition (repeatable)")
    run(main, parser.parse_args())
