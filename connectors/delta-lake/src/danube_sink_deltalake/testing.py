"""The Delta Lake sink's conformance case (danube_connect_core.testing.conformance), and a real S3.

- :class:`DeltaLakeTarget` - a local Delta table ``root/lake/faults`` with columns ``i`` (int64) and
  ``name``; every commit carries the per-partition application transactions that make a replayed batch a
  no-op;
- its outage (:func:`s3_outage`): the table lives on S3 (``moto_server``) behind a TCP proxy that refuses
  connections (a restarted moto_server would lose its in-memory bucket; the proxy cuts the network
  instead): :class:`S3DeltaLakeTarget`;
- :func:`moto_s3` - ``moto_server`` as a subprocess on a free port, and the ``AWS_*`` environment that
  points delta-rs at a fresh bucket (moto is in the workspace's dev group; without it the test is skipped,
  under ``CI=true`` it fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from danube_connect_core.testing.conformance import Outage, SinkCase, SinkTarget, TcpProxy

__all__ = ["CASE", "DeltaLakeTarget", "S3DeltaLakeTarget", "moto_s3", "s3_outage"]


class DeltaLakeTarget(SinkTarget):
    """The local Delta table ``root/lake/faults``."""

    section_name = "deltalake"

    @property
    def table(self) -> Path:
        return self.root / "lake" / "faults"

    def section(self) -> dict[str, Any]:
        return {"table_root": str(self.table.parent)}

    def mapping(self) -> dict[str, Any]:
        return {
            "table": self.table.name,
            "columns": [
                {"path": "$.i", "column": "i", "type": "int64", "nullable": False},
                {"path": "$.name", "column": "name", "type": "string"},
            ],
        }

    def bad_records(self) -> list[Any]:
        return [{"name": "without i"}, {"i": "not a number", "name": "x"}, ["not", "an", "object"]]

    async def stored_ids(self) -> list[int]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[int]:
        from deltalake import DeltaTable

        if not (self.table / "_delta_log").exists():
            return []
        column = DeltaTable(str(self.table)).to_pyarrow_table(columns=["i"]).column("i")
        return [int(i) for i in column.to_pylist()]


class S3DeltaLakeTarget(DeltaLakeTarget):
    """The Delta table ``s3://lake/faults`` on moto_server; the sink reaches S3 through ``sink_endpoint``
    (a proxy), the test reads the table from moto_server directly."""

    def __init__(self, root: Path, s3_env: dict[str, str], sink_endpoint: str) -> None:
        super().__init__(root)
        self.s3_env = s3_env
        self.env.update({**s3_env, "AWS_ENDPOINT_URL": sink_endpoint})

    def section(self) -> dict[str, Any]:
        return {"table_root": "s3://lake"}

    def _read(self) -> list[int]:
        from deltalake import DeltaTable

        uri = f"s3://lake/{self.table.name}"
        if not DeltaTable.is_deltatable(uri, storage_options=self.s3_env):
            return []
        table = DeltaTable(uri, storage_options=self.s3_env)
        return [int(i) for i in table.to_pyarrow_table(columns=["i"]).column("i").to_pylist()]


@contextlib.asynccontextmanager
async def s3_outage(root: Path) -> AsyncIterator[tuple[SinkTarget, Outage]]:
    """An :class:`S3DeltaLakeTarget` under ``root`` and the outage that cuts it off: S3 refuses
    connections."""
    with moto_s3("lake") as s3_env:
        proxy = TcpProxy(int(s3_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]))
        await proxy.start()
        try:
            target = S3DeltaLakeTarget(root, s3_env, f"http://127.0.0.1:{proxy.port}")
            yield target, Outage("S3 refuses connections", proxy.refuse, proxy.start)
        finally:
            await proxy.stop()


def _moto_binary() -> str | None:
    local = Path(sys.executable).parent / "moto_server"
    return str(local) if local.exists() else shutil.which("moto_server")


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[dict[str, str]]:
    """Yields the AWS_* environment that points delta-rs (object_store) at a fresh ``bucket`` on a
    ``moto_server`` of its own, stopped on exit. Skips the test when moto_server is not installed
    (AssertionError under ``CI=true``); AssertionError when it does not start within 30 s."""
    binary = _moto_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("moto_server is not installed (moto[server] is in the dev group)")
        import pytest

        pytest.skip("moto_server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                req = urllib.request.Request(f"{url}/{bucket}", method="PUT")
                urllib.request.urlopen(req, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("moto_server did not start") from None
                time.sleep(0.1)
        yield {
            "AWS_ENDPOINT_URL": url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


CASE = SinkCase("delta-lake", idempotent=True, target_type=DeltaLakeTarget, outage=s3_outage)
