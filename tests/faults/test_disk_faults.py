"""A full or read-only disk under the embedded broker and under the Delta Lake sink: real processes, real
kernel faults (a small tmpfs filled to ENOSPC by a ballast file or remounted read-only; an ext4 image the
kernel turns read-only after an injected filesystem error), exact counts.

What the broker does (documented in its README):

- ENOSPC (or a quota) while storing -> the RPC answers RESOURCE_EXHAUSTED, "... No space left on device
  (<file>); nothing was stored"; a record cut short by the full disk is cut off the log at once, so the
  log never holds a torn record. Any other storage error (EROFS, EIO) -> UNAVAILABLE with the same shape.
  Clients retry both codes (docs/wire-contract.md §2). Sends succeed again as soon as there is space, or
  the disk is writable again, without a restart; each outage is logged once.
- A data dir that is not writable at start -> exit 1 and one line "cannot start: ... data dir <dir> is not
  writable ...", no traceback. Stopping on a full or read-only disk exits 0 and loses nothing stored.

What the Delta sink does: a full or read-only table directory while running is a target outage
(invariant 5): retried with backoff, /ready 503 naming the reason, one log line per attempt, nothing acked
or dead-lettered; once writable again the table holds exactly the produced records (the application
transaction ids make a retried commit a no-op). A table directory on a read-only filesystem at start ->
exit 1, one line, no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import grpc
import orjson
import pytest
from danube_connect_core.testing import ConnectorProcess, http_get, produce
from danube_connect_core.testing.conformance import (
    PARTITIONS,
    WINDOW,
    backlog,
    produce_records,
    start_ready,
    wait_until,
)
from danube_connect_core.testing.storage_faults import (
    Tmpfs,
    mounted_ext4,
    mounted_tmpfs,
    require_ext4_capability,
    require_mount_capability,
)
from danube_embedded_broker.testing import BrokerProcess, StubClient, next_message
from danube_sink_deltalake.testing import DeltaLakeTarget

TOPIC = "/default/disk"
#: Bigger than a memory page, so a record written into a nearly full disk is cut short by the kernel.
PAYLOAD_BYTES = 6000
PRODUCERS = ("p0", "p1", "p2")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Tmpfs]:
    """A 2 MiB tmpfs at ``tmp_path/disk`` (the broker's data dir; its log file lands beside it)."""
    require_mount_capability()
    with mounted_tmpfs(tmp_path / "disk", 2 * 1024 * 1024) as fs:
        yield fs


def body(producer: str, seq: int) -> bytes:
    head = f"{producer}:{seq}:".encode()
    return head + bytes((seq + i) % 251 for i in range(PAYLOAD_BYTES - len(head)))


@contextlib.contextmanager
def broker_on(data_dir: Path, *args: str) -> Iterator[BrokerProcess]:
    """A broker process on ``data_dir`` (start it yourself); killed at the end if it still runs."""
    process = BrokerProcess(data_dir, args=args)
    try:
        yield process
    finally:
        if process.running:
            process.kill()


def stop_cleanly(process: BrokerProcess) -> None:
    """SIGTERM: exit 0, and no traceback nor torn record in the broker's whole log."""
    assert process.stop() == 0, process.log_tail()
    text = process.log_path.read_text(errors="replace")
    assert [line for line in text.splitlines() if "Traceback" in line or "torn tail" in line] == []


async def drain(client: StubClient, subscription: str, count: int) -> list[bytes]:
    """Read and ack ``count`` messages of ``subscription``; then check that no further one arrives."""
    call = await client.stream(await client.subscribe(TOPIC, subscription, f"reader-{subscription}"))
    got: list[bytes] = []
    while len(got) < count:
        message = await next_message(call, wait_s=30)
        got.append(message.payload)
        await client.ack(message)
    with pytest.raises(TimeoutError):
        await next_message(call, wait_s=1.0)
    call.cancel()
    return got


class Producer:
    """One raw producer (no client retries) that records exactly what the broker acknowledged."""

    def __init__(self, client: StubClient, name: str, producer_id: int) -> None:
        self.client = client
        self.name = name
        self.id = producer_id
        self.seq = 0
        self.acked: list[bytes] = []
        self.errors: list[grpc.aio.AioRpcError] = []

    async def send_one(self) -> bool:
        payload = body(self.name, self.seq)
        self.seq += 1
        try:
            await self.client.send(self.id, TOPIC, payload)
        except grpc.aio.AioRpcError as exc:
            self.errors.append(exc)
            return False
        self.acked.append(payload)
        return True

    async def send_until_errors(self, errors: int) -> None:
        """Send continuously until ``errors`` sends failed."""
        while len(self.errors) < errors:
            if not await self.send_one():
                await asyncio.sleep(0.02)


async def test_broker_disk_full_refuses_cleanly_and_recovers_without_restart(disk: Tmpfs) -> None:
    log_file = disk.path / "topics" / "default" / "disk" / "log.dat"
    with broker_on(disk.path) as process:
        url = process.start()
        async with StubClient(url) as client:
            ids = [await client.create_producer(TOPIC, name) for name in PRODUCERS]
            producers = [Producer(client, n, i) for n, i in zip(PRODUCERS, ids, strict=True)]
            for subscription in ("live", "replay"):  # subscriptions start at the end: create them first
                await client.subscribe(TOPIC, subscription, f"reader-{subscription}")
            for p in producers:
                for _ in range(20):
                    assert await p.send_one(), p.errors

            # The disk fills up while the producers send; each goes on until 3 of its sends failed.
            sending = [asyncio.create_task(p.send_until_errors(3)) for p in producers]
            ballast = await asyncio.to_thread(disk.fill)
            async with asyncio.timeout(60):
                await asyncio.gather(*sending)
            assert ballast > 0 and disk.free_bytes() == 0
            assert process.running, process.log_tail()
            for p in producers:
                for error in p.errors:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error, process.log_tail())
                    assert "No space left on device" in (error.details() or ""), error
                    assert str(log_file) in (error.details() or ""), error
            # A new topic needs space for its metadata: refused the same way.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.create_producer("/default/disk-new", "p-new")
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value

            # Space comes back: the same producers and the same broker process carry on.
            disk.free()
            for p in producers:
                for _ in range(10):
                    assert await p.send_one(), (p.errors[-1], process.log_tail())
            new_id = await client.create_producer("/default/disk-new", "p-new")
            await client.send(new_id, "/default/disk-new", b"after the disk was full")

            acked = sorted(payload for p in producers for payload in p.acked)
            assert len(acked) == len(set(acked)) == sum(len(p.acked) for p in producers)
            live = await drain(client, "live", len(acked))
            assert sorted(live) == acked  # every acknowledged message, intact, once; nothing else

        assert process.stop() == 0, process.log_tail()
        process.start()  # the same data dir: the log loads cleanly, nothing torn, nothing lost
        async with StubClient(url) as client:
            replay = await drain(client, "replay", len(acked))
        assert sorted(replay) == acked

        # Stopping on a full disk (the final snapshots are refused) exits 0 and keeps every ack.
        await asyncio.to_thread(disk.fill)
        assert process.stop() == 0, process.log_tail()
        disk.free()
        process.start()
        async with StubClient(url) as client:
            assert await drain(client, "replay", 0) == []
            assert await drain(client, "live", 0) == []
        stop_cleanly(process)


async def seed(client: StubClient, count: int) -> int:
    """A producer on TOPIC, subscription "after" (it starts at the end: created first), then messages
    ``body("p", 0..count-1)``; returns the producer id."""
    pid = await client.create_producer(TOPIC)
    await client.subscribe(TOPIC, "after")
    for i in range(count):
        await client.send(pid, TOPIC, body("p", i))
    return pid


def run_broker_cli(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "danube_embedded_broker", "--port", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_broker_read_only_data_dir_at_start_exits_1_with_one_line(disk: Tmpfs) -> None:
    with broker_on(disk.path) as process:
        url = process.start()
        async with StubClient(url) as client:
            await seed(client, 5)
        assert process.stop() == 0, process.log_tail()

        disk.remount(read_only=True)
        done = await asyncio.to_thread(run_broker_cli, disk.path)
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""  # never announced itself as ready
        assert "Traceback" not in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1, done.stderr
        assert "cannot start" in errors[0] and str(disk.path) in errors[0], errors
        assert "Read-only file system" in errors[0], errors

        disk.remount(read_only=False)  # the refused start changed nothing on disk
        process.start()
        async with StubClient(url) as client:
            pid = await client.create_producer(TOPIC)
            await client.send(pid, TOPIC, body("p", 5))
            assert sorted(await drain(client, "after", 6)) == sorted(body("p", i) for i in range(6))
        stop_cleanly(process)


async def test_broker_data_dir_turning_read_only_refuses_then_recovers(disk: Tmpfs) -> None:
    """The kernel refuses a read-only remount while a file in the mount is open for writing, so a running
    broker's data dir can turn read-only only while it holds no topic log: a fresh broker here."""
    with broker_on(disk.path) as process:
        url = process.start()
        disk.remount(read_only=True)
        async with StubClient(url) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.create_producer(TOPIC)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
            details = refused.value.details() or ""
            assert "Read-only file system" in details and str(disk.path) in details, details
            assert process.running, process.log_tail()

            disk.remount(read_only=False)  # no restart: the next attempt succeeds
            await seed(client, 3)
            assert sorted(await drain(client, "after", 3)) == sorted(body("p", i) for i in range(3))
        stop_cleanly(process)


async def test_broker_data_dir_failing_read_only_under_open_logs(tmp_path: Path) -> None:
    """The way a data dir really turns read-only under a running broker: the kernel meets a filesystem error
    (ext4 errors=remount-ro) and every write, also into the open log, fails with EROFS. Only an unmount
    clears that, so recovery is: stop the broker, repair the filesystem, start again. ``--fsync always``:
    what was acknowledged is on the disk before the error (an aborted journal drops unwritten pages)."""
    require_ext4_capability()
    with (
        mounted_ext4(tmp_path / "disk", 16 * 1024 * 1024) as image,
        broker_on(image.path, "--fsync", "always") as process,
    ):
        log_file = image.path / "topics" / "default" / "disk" / "log.dat"
        url = process.start()
        async with StubClient(url) as client:
            pid = await seed(client, 10)

            image.fail_read_only()
            for i in range(10, 13):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await client.send(pid, TOPIC, body("p", i))
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
                details = refused.value.details() or ""
                assert "Read-only file system" in details and str(log_file) in details, details
            assert process.running, process.log_tail()
        assert process.stop() == 0, process.log_tail()  # the final snapshots are refused: logged

        image.repair()
        process.start()
        async with StubClient(url) as client:
            pid = await client.create_producer(TOPIC)
            await client.send(pid, TOPIC, body("p", 13))
            expected = sorted(body("p", i) for i in [*range(10), 13])
            assert sorted(await drain(client, "after", 11)) == expected
        stop_cleanly(process)


# -- the Delta Lake sink -----------------------------------------------------------------------------

DELTA_TOPIC = "/default/delta-disk"
DELTA_SUBSCRIPTION = "delta-disk"


def metric(port: int, name: str) -> float:
    """Sum of a sink's metric over its labels (0 when absent)."""
    status, text = http_get(port, "/metrics")
    assert status == 200, text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


#: What delta-rs's storage layer (object_store's BufWriter) prints when it is polled again after a write the
#: disk refused: a panic in a tokio worker that the writer's task absorbs (the write still fails with the
#: disk's error, which the sink retries). An upstream bug; the only non-JSON output tolerated below.
OBJECT_STORE_PANIC = re.compile(
    r"thread '[^']+' \(\d+\) panicked at \S*/object_store-[\d.]+/src/buffered\.rs:\d+:\d+:$"
)
PANIC_DETAILS = ("Already shut down", "stack backtrace:", "note: ")


def log_records(proc: ConnectorProcess) -> list[dict[str, object]]:
    """The sink's JSON log records. Any other output fails the test (a traceback, a panic), except the
    object_store panic above, block by block."""
    records: list[dict[str, object]] = []
    other: list[str] = []
    in_panic = False
    for line in proc.lines:
        if line.startswith("{"):
            records.append(orjson.loads(line))
            in_panic = False
        elif OBJECT_STORE_PANIC.match(line):
            in_panic = True
        elif line and not (in_panic and line.startswith(PANIC_DETAILS)):
            other.append(line)
    assert other == [], "the sink printed lines that are not JSON log records:\n" + "\n".join(other)
    return records


async def test_delta_sink_retries_through_a_full_then_read_only_disk(
    broker_factory: object, tmp_path: Path
) -> None:
    require_mount_capability()
    broker = await broker_factory(max_unacked_messages=WINDOW)  # type: ignore[operator]
    target = DeltaLakeTarget(tmp_path / "delta")
    with mounted_tmpfs(target.table.parent, 8 * 1024 * 1024) as lake:
        # A long retry budget: the sink must wait for the disk however long the outage lasts.
        config = target.write_config(
            broker.url,
            DELTA_TOPIC,
            DELTA_SUBSCRIPTION,
            retry={"max_retries": 1000, "retry_backoff_ms": 100, "max_backoff_ms": 1000},
        )
        await produce(broker.url, DELTA_TOPIC, [], partitions=PARTITIONS)
        # Panics of the native storage layer in their short form (see OBJECT_STORE_PANIC).
        proc = ConnectorProcess("delta-lake", config, env={**target.env, "RUST_BACKTRACE": "0"})
        try:
            port = await start_ready(proc, within=90)

            async def stored(n: int) -> bool:
                return (
                    len(await target.stored_ids()) == n
                    and backlog(broker, DELTA_TOPIC, DELTA_SUBSCRIPTION) == 0
                )

            async def not_ready_on(reason: str) -> bool:
                status, body = await asyncio.to_thread(http_get, port, "/ready")
                return status == 503 and reason in body

            async def ready() -> bool:
                return (await asyncio.to_thread(http_get, port, "/ready"))[0] == 200

            await produce_records(broker.url, DELTA_TOPIC, range(0, 500))
            await wait_until(partial(stored, 500), "the first 500 records in the table", within=60, proc=proc)

            for fault, reason, ids in (
                ("full", "No space left on device", range(500, 1000)),
                ("read-only", "Read-only file system", range(1000, 1500)),
            ):
                if fault == "full":
                    await asyncio.to_thread(lake.fill)
                else:
                    lake.remount(read_only=True)  # the idle sink holds no file open for writing
                await produce_records(broker.url, DELTA_TOPIC, ids)
                await wait_until(
                    partial(not_ready_on, reason), f"/ready 503 naming {reason!r}", within=60, proc=proc
                )
                # Retrying: nothing of the new records is acked, committed or dead-lettered.
                assert backlog(broker, DELTA_TOPIC, DELTA_SUBSCRIPTION) == len(ids)
                assert sorted(await target.stored_ids()) == list(range(ids.start))
                if fault == "full":
                    lake.free()
                else:
                    lake.remount(read_only=False)
                await wait_until(
                    partial(stored, ids.stop),
                    f"all {ids.stop} records after the {fault} disk",
                    within=60,
                    proc=proc,
                )
                await wait_until(ready, "/ready 200 again", within=30, proc=proc)

            assert sorted(await target.stored_ids()) == list(range(1500))  # exactly once each
            assert await asyncio.to_thread(metric, port, "danube_connector_dead_lettered_total") == 0
            retries = await asyncio.to_thread(metric, port, "danube_connector_retries_total")
            proc.signal()
            assert await asyncio.to_thread(proc.wait) == 0, proc.log_tail()
        finally:
            proc.kill()
    records = log_records(proc)
    failures = [str(r["message"]) for r in records if "write to target failed" in str(r.get("message"))]
    # One line per retry (the backoff spaces them), each naming the table and the kernel's reason.
    assert retries >= 2 and len(failures) == retries, failures
    assert all(str(target.table) in line for line in failures), failures
    assert any("No space left on device" in line for line in failures), failures
    assert any("Read-only file system" in line for line in failures), failures


async def test_delta_sink_read_only_table_dir_at_start_exits_1(
    broker_factory: object, tmp_path: Path
) -> None:
    require_mount_capability()
    broker = await broker_factory(max_unacked_messages=WINDOW)  # type: ignore[operator]
    target = DeltaLakeTarget(tmp_path / "delta")
    with mounted_tmpfs(target.table.parent, 1024 * 1024) as lake:
        config = target.write_config(broker.url, DELTA_TOPIC, DELTA_SUBSCRIPTION)
        lake.remount(read_only=True)
        proc = ConnectorProcess("delta-lake", config, env=target.env).start()
        try:
            assert await asyncio.to_thread(proc.wait, 60) == 1, proc.log_tail()
        finally:
            proc.kill()
    records = log_records(proc)  # no traceback, no panic: JSON records only
    errors = [str(r["message"]) for r in records if r.get("level") in ("error", "ERROR", "critical")]
    assert len(errors) == 1, proc.log_tail()
    assert str(target.table.parent) in errors[0] and "read-only" in errors[0].lower(), errors
