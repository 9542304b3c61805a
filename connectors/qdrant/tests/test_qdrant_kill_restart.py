"""5,000 records on a 4-partition reliable topic through the real ``danube-connect run qdrant`` process,
SIGKILLed mid-stream and restarted on the same local-mode directory: exactly 5,000 points, right values.

Local mode holds an exclusive lock on its directory; the kernel drops it when the process dies (also on
SIGKILL), so the restarted process opens the same data. While a sink process holds the lock, the test
counts points in a copy of the directory (copied without the lock file; SQLite's journal makes the copy
consistent).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.testing import ConnectorProcess, produce
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_connect_core.testing.waits import start_ready
from qdrant_client import QdrantClient

TOPIC = "/default/embeddings"
N = 5000


@pytest.fixture
def store() -> Iterator[Path]:
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    path = Path(tempfile.mkdtemp(prefix="qdrant-kill-test-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_config(tmp_path: Path, url: str, store: Path) -> Path:
    mapping = {
        "topic": TOPIC,
        "subscription": "qdrant-kill",
        "collection": "embeddings",
        "vector_field": "embedding",
        "id_field": "doc",
        "dimension": 3,
        "distance": "Euclid",
    }
    return write_connector_toml(
        tmp_path / "qdrant.toml",
        url,
        "qdrant-kill",
        retry={"max_retries": 10, "retry_backoff_ms": 50, "max_backoff_ms": 500},
        processing={"batch_size": 200, "log_format": "json"},
        qdrant={"url": f"path:{store}", "topic_mappings": [mapping]},
    )


def count_copy(store: Path, scratch: Path) -> int:
    """Points in a snapshot of ``store`` (0 while the collection does not exist yet)."""
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        shutil.copytree(store, scratch, ignore=shutil.ignore_patterns(".lock"))
        client = QdrantClient(path=str(scratch))
    except (FileNotFoundError, OSError, ValueError):
        return 0  # copied mid-write: try again
    try:
        if not client.collection_exists("embeddings"):
            return 0
        return client.count("embeddings", exact=True).count
    finally:
        client.close()


async def wait_count(store: Path, scratch: Path, proc: ConnectorProcess, n: int, within: float) -> int:
    try:
        async with asyncio.timeout(within):
            while True:
                assert proc.proc is not None
                if proc.proc.poll() is not None:
                    raise AssertionError(f"sink exited {proc.proc.returncode}:\n{proc.log_tail()}")
                seen = await asyncio.to_thread(count_copy, store, scratch)
                assert seen <= N, f"{seen} points: duplicates"
                if seen >= n:
                    return seen
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise AssertionError(f"fewer than {n} points:\n{proc.log_tail()}") from None


@pytest.mark.slow
async def test_sigkill_mid_stream_then_restart_gives_exactly_5000_points(
    broker_factory: Any, tmp_path: Path, store: Path
) -> None:
    broker = await broker_factory()
    config = write_config(tmp_path, broker.url, store)
    scratch = tmp_path / "snapshot"
    await produce(broker.url, TOPIC, [], partitions=4, reliable=True)
    first = ConnectorProcess("qdrant", config)
    second = ConnectorProcess("qdrant", config)
    try:
        await start_ready(first)
        payloads = [{"doc": f"doc-{i}", "embedding": [float(i), -1.0, 0.5], "n": i} for i in range(N)]
        producing = asyncio.create_task(produce(broker.url, TOPIC, payloads, partitions=4, reliable=True))
        await wait_count(store, scratch, first, 1000, within=120)
        first.kill()  # SIGKILL in the middle of the stream
        assert first.proc is not None and first.proc.returncode == -signal.SIGKILL
        await start_ready(second)  # opens the same directory: the lock died with the first process
        await producing
        assert await wait_count(store, scratch, second, N, within=180) == N
        second.signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait) == 0, second.log_tail()
    finally:
        first.kill()
        second.kill()
    client = QdrantClient(path=str(store))
    try:
        points, _ = client.scroll("embeddings", limit=2 * N, with_vectors=True)
    finally:
        client.close()
    assert len(points) == N
    by_n = {p.payload["n"]: p for p in points}
    assert sorted(by_n) == list(range(N))
    for i in (0, 2500, N - 1):
        assert by_n[i].payload == {"doc": f"doc-{i}", "n": i}
        assert by_n[i].vector == [float(i), -1.0, 0.5]
