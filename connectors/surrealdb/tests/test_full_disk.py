"""The embedded engine (surrealkv) on a disk that fills up: a target outage, never poison.

A real kernel fault: the store lives on a small tmpfs that a ballast file fills to ENOSPC. After one failed
write surrealkv's commit log refuses every later transaction ("fsync failed") until the store is opened
again, and an empty statement still succeeds, so before the fix every row of the batch looked refused
and was dead-lettered. Now a storage failure is a Retryable, the engine is reopened on the next call
(the reopen repairs the torn tail of the log), and the batch is written once the disk has room.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from danube_connect_core.errors import Retryable
from danube_connect_core.testing import write_batch
from danube_connect_core.testing.storage_faults import mounted_tmpfs, require_mount_capability
from danube_sink_surrealdb.failures import StatementRejected, StorageProblem, classify

from .helpers import payment, record
from .test_writes import open_sink, rows


def test_storage_failures_are_told_apart_from_refused_data() -> None:
    full = RuntimeError(
        "Failed to create datastore: There was a problem with the underlying datastore: Log error: "
        "IO error: kind=no storage space, message=No space left on device (os error 28)"
    )
    refused = RuntimeError("Found 'x' for field `amount`, with record `t:1`, but expected a int")
    assert isinstance(classify(full), StorageProblem)
    assert isinstance(classify(refused), StatementRejected)


@pytest.mark.faults  # mounts a tmpfs and fills it
async def test_full_disk_is_retried_then_written_once_without_dead_letters(tmp_path: Path) -> None:
    require_mount_capability()
    with mounted_tmpfs(tmp_path / "disk", 4 * 1024 * 1024) as disk:
        sink = await open_sink(url=f"surrealkv://{disk.path / 'store'}")
        try:
            await write_batch(sink, [record(payment(i), offset=i) for i in range(10)])
            batch = [record({**payment(i), "note": "x" * 2000}, offset=i) for i in range(10, 60)]
            await asyncio.to_thread(disk.fill)
            for _ in range(3):  # the write, then the reopen attempts while the disk is still full
                with pytest.raises(Retryable, match=r"No space left on device|fsync failed"):
                    await write_batch(sink, batch)
            disk.free()
            await write_batch(sink, batch)
            await write_batch(sink, batch)  # a redelivery changes nothing (invariant 2)
            stored = await rows(sink)
        finally:
            await sink.shutdown()
    assert sorted(r["amount"] for r in stored) == list(range(60))
