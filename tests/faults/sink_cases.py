"""The five sink connectors as fault-test cases: one :class:`SinkCase` each, with a real target.

Interface (stable; the fault tests import it):

- :data:`CASES` - one :class:`SinkCase` per sink (surrealdb, delta-lake, qdrant, clickhouse, http), for
  ``pytest.mark.parametrize("case", CASES, ids=str)``. ``case.name`` is the connector name of
  ``danube-connect run``; ``case.idempotent`` says whether a redelivery may NOT duplicate a record.
- ``async with case.open_target(directory) as target`` - a ready :class:`SinkTarget` under ``directory``
  (stores, tables; the HTTP server runs in the calling event loop), torn down on exit.
- ``target.write_config(broker_url, topic, subscription, processing=..., retry=..., section=...,
  mapping=...)`` -> the TOML path for ``danube-connect run <case.name>``; the dicts override the defaults
  (fast retries, batches of 1,000, ``max_unacked_messages`` = :data:`WINDOW`) key by key.
  ``target.env`` is the environment the sink process needs on top of the test's.
- ``await target.stored_ids()`` - the ``"i"`` field of every record the target holds, WITH multiplicity
  (a duplicate shows twice). The embedded stores (SurrealDB surrealkv, Qdrant local mode, chdb) belong to
  one process at a time: call it only while no sink process of this target runs. The HTTP target can
  be read at any time.
- :func:`payload` - the record every case writes (``{"i": i, "name": ..., "v": [3 floats]}``);
  :func:`produce_records` publishes them on a reliable topic of :data:`PARTITIONS` partitions.
- Process and broker helpers: :func:`start_ready`, :func:`sent_total`, :func:`wait_until`,
  :func:`backlog`, :func:`acked_ids` (the records the in-process broker holds as acknowledged by a
  subscription: the invariant-1 check "acked implies stored"), :func:`exit_code`, :func:`drain_and_stop`.
- Verdicts: :func:`assert_exactly_once` (or at least once for a non-idempotent case),
  :func:`assert_acked_stored`, :meth:`HttpTarget.assert_stable_keys`, :func:`assert_no_lost_acks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from danube_connect_core.testing import ConnectorProcess, http_get, produce

__all__ = [
    "CASES",
    "PARTITIONS",
    "WINDOW",
    "ClickHouseTarget",
    "DeltaLakeTarget",
    "HttpTarget",
    "QdrantTarget",
    "SinkCase",
    "SinkTarget",
    "SurrealDbTarget",
    "acked_ids",
    "assert_acked_stored",
    "assert_exactly_once",
    "assert_no_lost_acks",
    "backlog",
    "drain_and_stop",
    "exit_code",
    "payload",
    "produce_records",
    "sent_total",
    "start_ready",
    "wait_until",
]

#: Partitions of the topics the fault tests produce to.
PARTITIONS = 4
#: The broker's in-flight window per subscription and partition, and the sinks' matching
#: ``processing.max_unacked_messages``: large, so batches of 1,000 fill and a 10,000-record drain is quick.
WINDOW = 1000


def payload(i: int) -> dict[str, Any]:
    """Record ``i``: every sink stores ``i`` (the qdrant case uses ``v`` as the point's vector)."""
    return {"i": i, "name": f"n{i}", "v": [float(i), 1.0, 0.5]}


async def produce_records(broker_url: str, topic: str, ids: Iterable[int]) -> None:
    """Publish :func:`payload` of each id on ``topic`` (reliable, :data:`PARTITIONS` partitions),
    concurrently within the producer's window; returns once the broker acknowledged every one."""
    await produce(broker_url, topic, [payload(i) for i in ids], partitions=PARTITIONS, reliable=True)


# -- configuration -----------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_table(prefix: str, table: dict[str, Any], out: list[str]) -> None:
    """Scalars of ``table`` first, then its sub-tables and arrays of tables (TOML needs that order)."""
    nested = {k: v for k, v in table.items() if isinstance(v, dict) or _is_table_array(v)}
    for key, value in table.items():
        if key not in nested:
            out.append(f"{key} = {_toml_value(value)}")
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.append(f"\n[{name}]")
            _toml_table(name, value, out)
        else:
            for item in value:
                out.append(f"\n[[{name}]]")
                _toml_table(name, item, out)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def to_toml(document: dict[str, Any]) -> str:
    """A small TOML writer for connector configs (strings, numbers, booleans, lists, nested tables)."""
    out: list[str] = []
    _toml_table("", document, out)
    return "\n".join(out) + "\n"


# -- targets -----------------------------------------------------------------------------------------


class SinkTarget(ABC):
    """One sink's real target under ``root``, and the TOML that points the sink at it."""

    #: The connector's TOML section (``[surrealdb]``, ``[deltalake]``, ...).
    section_name: str

    def __init__(self, root: Path) -> None:
        self.root = root
        #: Environment for the sink process, on top of the test's own.
        self.env: dict[str, str] = {"LOG_FORMAT": "json"}

    @abstractmethod
    def section(self) -> dict[str, Any]:
        """The connector section's connection settings (without topic mappings)."""

    @abstractmethod
    def mapping(self) -> dict[str, Any]:
        """The target fields of a topic mapping (table, collection ...)."""

    @abstractmethod
    async def stored_ids(self) -> list[int]:
        """The ``i`` of every stored record, with multiplicity, in no particular order.

        Raises whatever the target raises when it cannot be read (e.g. a sink process still holds it).
        """

    async def start(self) -> None:
        """Bring the target up (create tables, start servers). Default: nothing to do."""
        return None

    async def stop(self) -> None:
        """Tear the target down. Default: nothing to do (its files live under ``root``)."""
        return None

    def write_config(
        self,
        broker_url: str,
        topic: str,
        subscription: str,
        *,
        connector_name: str | None = None,
        processing: dict[str, Any] | None = None,
        retry: dict[str, Any] | None = None,
        section: dict[str, Any] | None = None,
        mapping: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``<root>/<subscription>.toml`` for this sink and return its path.

        Defaults: retries every 50..500 ms up to 10 times; batches of 1,000 flushed after 1 s or 100 ms
        idle; ``max_unacked_messages`` = :data:`WINDOW` (start the broker with the same window);
        a 20 s shutdown timeout; metrics on a free port. Each override dict updates its table key by key.
        """
        document: dict[str, Any] = {
            "danube_service_url": broker_url,
            "connector_name": connector_name or f"faults-{self.section_name}",
            "retry": {"max_retries": 10, "retry_backoff_ms": 50, "max_backoff_ms": 500, **(retry or {})},
            "processing": {
                "metrics_port": 0,
                "batch_size": 1000,
                "batch_timeout_ms": 1000,
                "batch_idle_ms": 100,
                "max_unacked_messages": WINDOW,
                "shutdown_timeout_ms": 20_000,
                **(processing or {}),
            },
        }
        topic_mapping = {"topic": topic, "subscription": subscription, **self.mapping(), **(mapping or {})}
        document[self.section_name] = {
            **self.section(),
            **(section or {}),
            "topic_mappings": [topic_mapping],
        }
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{subscription}.toml"
        path.write_text(to_toml(document))
        return path


class SurrealDbTarget(SinkTarget):
    """An embedded SurrealDB store (surrealkv) in ``root/surreal``; records get their id from the
    message id (the default), so a redelivery rewrites nothing (``INSERT IGNORE``)."""

    section_name = "surrealdb"
    table = "faults"

    def section(self) -> dict[str, Any]:
        return {"url": f"surrealkv://{self.root / 'surreal'}", "namespace": "faults", "database": "faults"}

    def mapping(self) -> dict[str, Any]:
        return {"table": self.table}

    async def stored_ids(self) -> list[int]:
        from surrealdb import AsyncSurreal

        if not (self.root / "surreal").exists():
            return []
        db: Any = AsyncSurreal(f"surrealkv://{self.root / 'surreal'}")
        await db.connect()
        try:
            await db.use("faults", "faults")
            rows = await db.query(f"SELECT VALUE i FROM `{self.table}`")
        finally:
            await db.close()
        return [int(i) for i in rows]


class DeltaLakeTarget(SinkTarget):
    """A local Delta table ``root/lake/faults`` with columns ``i`` (int64) and ``name``; every commit
    carries the per-partition application transactions that make a replayed batch a no-op."""

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

    async def stored_ids(self) -> list[int]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[int]:
        from deltalake import DeltaTable

        if not (self.table / "_delta_log").exists():
            return []
        column = DeltaTable(str(self.table)).to_pyarrow_table(columns=["i"]).column("i")
        return [int(i) for i in column.to_pylist()]


class QdrantTarget(SinkTarget):
    """Qdrant local mode in ``root/qdrant``: collection ``faults`` auto-created (3-d Euclid vectors from
    ``v``); point ids are UUIDv5 of the message id (the default), so a redelivery overwrites its point."""

    section_name = "qdrant"
    collection = "faults"

    def section(self) -> dict[str, Any]:
        return {"url": f"path:{self.root / 'qdrant'}"}

    def mapping(self) -> dict[str, Any]:
        return {"collection": self.collection, "vector_field": "v", "dimension": 3, "distance": "Euclid"}

    async def stored_ids(self) -> list[int]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[int]:
        from qdrant_client import QdrantClient

        if not (self.root / "qdrant").exists():
            return []
        client = QdrantClient(path=str(self.root / "qdrant"))  # takes the directory's lock
        try:
            if not client.collection_exists(self.collection):
                return []
            out: list[int] = []
            offset: Any = None
            while True:
                points, offset = client.scroll(
                    self.collection, limit=5000, offset=offset, with_payload=["i"], with_vectors=False
                )
                out += [int(p.payload["i"]) for p in points if p.payload is not None]
                if offset is None:
                    return out
        finally:
            client.close()  # releases the lock for the next sink process


#: Runs statements on a chdb directory in a child process: chdb allows one engine path per process, and
#: the sink processes open the same path, so the test process never opens it itself.
_CHDB_SCRIPT = """
import json, sys, clickhouse_connect
client = clickhouse_connect.get_client(dsn=sys.argv[1])
result = None
for sql in sys.argv[2:]:
    result = client.query(sql).result_rows if sql.startswith("SELECT") else client.command(sql)
print(json.dumps([list(r) for r in result] if isinstance(result, list) else None))
"""


class ClickHouseTarget(SinkTarget):
    """chdb in ``root/chdb``: table ``faults.events``, a MergeTree ordered by the Danube position with
    ``non_replicated_deduplication_window`` (without it chdb ignores insert de-duplication tokens) and the
    ``_danube_partition`` / ``_danube_offset`` columns (``include_metadata``) that let the sink skip rows
    of a redelivery however it is re-batched."""

    section_name = "clickhouse"
    ddl = """CREATE TABLE faults.events (
    i Int64,
    name String,
    v Array(Float64),
    _danube_partition Int32,
    _danube_offset Int64
) ENGINE = MergeTree ORDER BY (_danube_partition, _danube_offset)
SETTINGS non_replicated_deduplication_window = 1000"""

    @property
    def dsn(self) -> str:
        return f"chdb://{self.root / 'chdb'}"

    def chdb(self, *sql: str) -> Any:
        """Run ``sql`` statements in a child process; the last one's rows (SELECT) or None."""
        done = subprocess.run(
            [sys.executable, "-c", _CHDB_SCRIPT, self.dsn, *sql],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"chdb statements failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    async def start(self) -> None:
        await asyncio.to_thread(self.chdb, "CREATE DATABASE faults", self.ddl)

    def section(self) -> dict[str, Any]:
        return {"url": self.dsn, "database": "faults"}

    def mapping(self) -> dict[str, Any]:
        return {"table": "events", "include_metadata": True}

    async def stored_ids(self) -> list[int]:
        rows = await asyncio.to_thread(self.chdb, "SELECT i FROM faults.events")
        return [int(r[0]) for r in rows]


@dataclass
class Delivery:
    """One request the HTTP target accepted: its Idempotency-Key (None when absent) and record."""

    key: str | None
    i: int


@dataclass
class _HttpState:
    deliveries: list[Delivery] = field(default_factory=list)
    #: Idempotency-Key -> record: what a de-duplicating target keeps.
    stored: dict[str, int] = field(default_factory=dict)


class HttpTarget(SinkTarget):
    """A real aiohttp server (in the calling event loop) that de-duplicates on ``Idempotency-Key``, as a
    real idempotent API does: a repeated key is answered 200 and not stored again. The sink posts one
    record per request (``body_mode = "record"``), so each record's key is stable across redeliveries.

    ``status`` (default 200) scripts an outage: any other value is answered (with ``Retry-After: 0`` for
    429/503) and the request is neither stored nor recorded; ``refused`` counts those answers.
    """

    section_name = "http"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.state = _HttpState()
        self.status = 200
        self.refused = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    @property
    def deliveries(self) -> list[Delivery]:
        """Every accepted request, repeats included, in arrival order."""
        return self.state.deliveries

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.status != 200:
            self.refused += 1
            headers = {"Retry-After": "0"} if self.status in (429, 503) else {}
            return web.Response(status=self.status, headers=headers, text="scripted failure")
        i = int(orjson.loads(raw)["i"])
        key = request.headers.get("Idempotency-Key")
        self.state.deliveries.append(Delivery(key, i))
        # A request without a key cannot be de-duplicated: it is stored as a record of its own.
        self.state.stored.setdefault(key if key is not None else f"no-key-{uuid.uuid4()}", i)
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        """Start (or restart on the same port) the server."""
        app = web.Application()
        app.router.add_post("/ingest", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def section(self) -> dict[str, Any]:
        return {"url": self.url, "body_mode": "record", "max_in_flight": 64}

    def mapping(self) -> dict[str, Any]:
        return {}

    async def stored_ids(self) -> list[int]:
        return list(self.state.stored.values())

    def assert_stable_keys(self, n: int) -> None:
        """Records ``0..n-1`` arrived under exactly ``n`` distinct keys: each record's repeats (if any)
        carried its first key, so this target stored each once. Raises AssertionError naming offenders."""
        unstable = {i: keys for i, keys in self.keys_by_record().items() if len(keys) != 1 or None in keys}
        assert not unstable, f"{len(unstable)} records without one stable key, e.g. {_sample(unstable)}"
        distinct = {d.key for d in self.state.deliveries}
        assert len(distinct) == n, f"{len(distinct)} distinct Idempotency-Keys for {n} records"

    def keys_by_record(self) -> dict[int, set[str | None]]:
        """Record -> the Idempotency-Keys its deliveries carried (one each when redeliveries are stable)."""
        keys: dict[int, set[str | None]] = {}
        for d in self.state.deliveries:
            keys.setdefault(d.i, set()).add(d.key)
        return keys


@dataclass(frozen=True)
class SinkCase:
    """One sink connector under test: ``name`` for ``danube-connect run``, whether its writes are
    idempotent (a redelivery after a crash must not duplicate a record), and its target type."""

    name: str
    idempotent: bool
    target_type: type[SinkTarget]

    def __str__(self) -> str:
        return self.name

    @contextlib.asynccontextmanager
    async def open_target(self, directory: Path) -> AsyncIterator[SinkTarget]:
        """A started target under ``directory``; stopped on exit."""
        target = self.target_type(directory)
        await target.start()
        try:
            yield target
        finally:
            await target.stop()


CASES: tuple[SinkCase, ...] = (
    SinkCase("surrealdb", idempotent=True, target_type=SurrealDbTarget),
    SinkCase("delta-lake", idempotent=True, target_type=DeltaLakeTarget),
    SinkCase("qdrant", idempotent=True, target_type=QdrantTarget),
    SinkCase("clickhouse", idempotent=True, target_type=ClickHouseTarget),
    SinkCase("http", idempotent=True, target_type=HttpTarget),
)


# -- processes and the broker ------------------------------------------------------------------------


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    *,
    within: float,
    proc: ConnectorProcess | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``condition`` until it is true. Raises AssertionError naming ``what`` (with ``proc``'s log
    tail) after ``within`` seconds, or at once when ``proc`` exited meanwhile."""
    deadline = time.monotonic() + within
    while not await condition():
        if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
            raise AssertionError(
                f"waiting for {what}: the sink exited {proc.proc.returncode}:\n{proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f":\n{proc.log_tail()}" if proc is not None else ""
            raise AssertionError(f"not within {within} s: {what}{tail}")
        await asyncio.sleep(interval)


async def start_ready(proc: ConnectorProcess, within: float = 90.0) -> int:
    """Start ``proc`` and wait until ``/ready`` answers 200 (subscribed, target reachable); returns
    its metrics port. Raises AssertionError when it exits or is not ready ``within`` seconds."""
    proc.start()
    port = await asyncio.to_thread(proc.metrics_port, within)

    async def ready() -> bool:
        return (await asyncio.to_thread(http_get, port, "/ready"))[0] == 200

    await wait_until(ready, f"{proc.connector} ready", within=within, proc=proc, interval=0.05)
    return port


async def sent_total(port: int) -> float:
    """``danube_connector_messages_sent_total`` of a running sink (records written to its target)."""
    status, text = await asyncio.to_thread(http_get, port, "/metrics")
    if status != 200:
        return 0.0
    name = "danube_connector_messages_sent_total{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _partition_topics(broker: Any, topic: str) -> list[Any]:
    return [t for name, t in broker.core.topics.items() if name == topic or name.startswith(f"{topic}-part-")]


def backlog(broker: Any, topic: str, subscription: str) -> int:
    """Messages of ``topic`` (all partitions) not yet acked by ``subscription`` on an in-process broker."""
    names = {t.name for t in _partition_topics(broker, topic)}
    return sum(
        n for (t, sub), n in broker.core.snapshot().backlog.items() if sub == subscription and t in names
    )


def acked_ids(broker: Any, topic: str, subscription: str) -> list[int]:
    """The ``i`` of every message of ``topic`` that ``subscription`` acknowledged, read from an in-process
    broker's logs and cursors. Call it from the broker's event loop (no await: a consistent view)."""
    from danube_embedded_broker.wire import pb

    out: list[int] = []
    for t in _partition_topics(broker, topic):
        sub = t.subscriptions.get(subscription)
        if sub is None or t.log is None:
            continue
        for offset in range(t.log.next_offset):
            if sub.state.is_acked(offset):
                message = pb.StreamMessage.FromString(t.log.read(offset))
                out.append(int(orjson.loads(message.payload)["i"]))
    return out


async def drain_and_stop(
    proc: ConnectorProcess, broker: Any, topic: str, subscription: str, *, within: float
) -> None:
    """Wait until ``subscription`` has nothing left unacked on ``topic`` (an in-process broker), then
    SIGTERM ``proc`` and require exit code 0. Raises AssertionError with the log tail otherwise."""

    async def drained() -> bool:
        return backlog(broker, topic, subscription) == 0

    await wait_until(drained, f"{proc.connector} drained {topic}", within=within, proc=proc)
    proc.signal(signal.SIGTERM)
    code = await exit_code(proc, within=60.0)
    assert code == 0, f"{proc.connector} exited {code} after SIGTERM:\n{proc.log_tail()}"


async def exit_code(proc: ConnectorProcess, *, within: float) -> int:
    """``proc``'s exit code; AssertionError with its log tail when it is still running after ``within`` s."""
    try:
        return await asyncio.to_thread(proc.wait, within)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{proc.connector} still running after {within} s:\n{proc.log_tail()}") from None


def _sample(values: Iterable[Any] | dict[Any, Any], n: int = 10) -> str:
    items = list(values.items() if isinstance(values, dict) else values)
    return ", ".join(map(str, sorted(items)[:n]))


def assert_exactly_once(stored: list[int], n: int, *, idempotent: bool = True) -> None:
    """``stored`` holds every record ``0..n-1`` and nothing else: exactly once each when the target is
    idempotent, at least once otherwise. Raises AssertionError with counts and examples."""
    counts = Counter(stored)
    missing = set(range(n)) - counts.keys()
    assert not missing, f"{len(missing)} of {n} records lost, e.g. {_sample(missing)}"
    foreign = counts.keys() - set(range(n))
    assert not foreign, f"records that were never produced: {_sample(foreign)}"
    if idempotent:
        repeated = {i: c for i, c in counts.items() if c > 1}
        assert not repeated, f"{len(repeated)} records stored twice or more (i, copies): {_sample(repeated)}"
        assert len(stored) == n


def assert_no_lost_acks(proc: ConnectorProcess) -> None:
    """No ack of ``proc`` was given up on (the client logs "ack ... not delivered", the sink runtime
    "ack failed"): a lost ack is redelivered only after the broker's ack timeout, so a drain then stalls."""
    lost = [line for line in proc.lines if "not delivered" in line or "ack failed" in line]
    assert not lost, f"{len(lost)} acks of {proc.connector} were given up on:\n" + "\n".join(lost[:5])


def assert_acked_stored(acked: list[int], stored: list[int]) -> None:
    """Invariant 1 seen from outside: every record the broker holds as acknowledged is in the target."""
    missing = set(acked) - set(stored)
    assert not missing, (
        f"{len(missing)} records acknowledged to the broker but not in the target, e.g. {_sample(missing)}"
    )
