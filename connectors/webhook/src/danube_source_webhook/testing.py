"""The webhook source's conformance case (danube_connect_core.testing.conformance).

:class:`WebhookUpstream` is an HTTP client posting one JSON record per request to one endpoint of the
connector (no authentication, reliable dispatch, 4 partitions) on a loopback port chosen once, so a
restarted process listens where the first one did. A 2xx answer is the acknowledgement: the record must
be on the topic once. A refused connection or a 503 (the connector is down or draining) is no
acknowledgement. The topic has a JSON Schema (``i`` a non-negative integer) and the endpoint publishes the
raw body, so a bad input is JSON the schema rejects: the core's pipeline dead-letters it byte for byte
before the endpoint answers 422.

:func:`loopback_config` runs a given webhook TOML (``example_e2e/webhook-connector.toml`` in the end to end
tests and ``bench/e2e_bench.py``) on this machine.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
from danube_connect_core.testing.conformance import PARTITIONS, SourceCase, SourceUpstream, payload
from danube_connect_core.testing.harness import free_port
from danube_connect_core.testing.toml_writer import to_toml, write_toml

__all__ = ["CASE", "WebhookUpstream", "loopback_config"]

PATH = "/conformance/records"
#: What every good record (``payload(i)``) fits and every bad input does not.
SCHEMA = {"type": "object", "required": ["i"], "properties": {"i": {"type": "integer", "minimum": 0}}}


class WebhookUpstream(SourceUpstream):
    """POSTs to ``http://127.0.0.1:<port>/conformance/records``."""

    section_name = "webhook"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()
        self._session: aiohttp.ClientSession | None = None

    def section(self, topic: str) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "endpoints": [
                {
                    "path": PATH,
                    "danube_topic": topic,
                    "partitions": PARTITIONS,
                    "reliable_dispatch": True,
                    "publish_raw_body": True,
                    "auth": {"type": "none"},
                }
            ],
        }

    def write_config(self, broker_url: str, topic: str, *, processing: dict[str, Any] | None = None) -> Path:
        """The kit's configuration plus the topic's JSON Schema (a ``[[schemas]]`` table appended)."""
        path = super().write_config(broker_url, topic, processing=processing)
        schema_file = self.root / "record.schema.json"
        schema_file.write_text(json.dumps(SCHEMA))
        mapping = {"topic": topic, "subject": "conformance-record", "schema_type": "json_schema"}
        schemas = to_toml({"schemas": [{**mapping, "schema_file": str(schema_file)}]})
        path.write_text(path.read_text() + "\n" + schemas)
        return path

    def bad_records(self) -> list[bytes]:
        return [b'{"i": -1}', b'{"name": "no i"}', b'{"i": "one"}']

    async def send_bad(self, data: bytes) -> None:
        assert self._session is not None
        url = f"http://127.0.0.1:{self.port}{PATH}"
        headers = {"Content-Type": "application/json"}
        async with self._session.post(url, data=data, headers=headers) as answer:
            body = await answer.json()
        assert answer.status == 422 and body["dead_lettered"] is True, body

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, i: int) -> bool:
        assert self._session is not None
        try:
            async with self._session.post(f"http://127.0.0.1:{self.port}{PATH}", json=payload(i)) as answer:
                await answer.read()
                status = answer.status
        except aiohttp.ClientConnectionError:
            return False  # no process listening, or it closed the connection while stopping
        assert status in (200, 202, 503), f"record {i} answered {status}"
        return status != 503


def loopback_config(example: Path, data: Path) -> Path:
    """A copy of the webhook TOML ``example`` in ``data``, listening on 127.0.0.1 on a port the OS picks
    (``[webhook] host`` and ``port`` replaced, every other value kept), next to a copy of the ``schemas/``
    directory beside ``example`` (its ``schema_file`` paths are relative to the TOML). Returns the copy's
    path; the port chosen is logged as ``webhook_port``. Raises KeyError when ``example`` has no
    ``[webhook]`` table."""
    document = tomllib.loads(example.read_text())
    document["webhook"].update(host="127.0.0.1", port=0)
    schemas = example.parent / "schemas"
    if schemas.is_dir():
        shutil.copytree(schemas, data / "schemas", dirs_exist_ok=True)
    return write_toml(data / example.name, document)


CASE = SourceCase("webhook", idempotent=True, upstream_type=WebhookUpstream)
