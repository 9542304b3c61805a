"""Durable storage for reliable topics: an append-only log per topic and an ack journal per subscription.

Layout under ``<data_dir>/topics/<namespace>/<topic>/``::

    meta.json                   {"name", "dispatch_strategy"}; written once when the topic is created
    log.dat                     records ``<u32 len><u32 crc32><StreamMessage bytes>``; offset = record index
    subscriptions/sub-<q>.json  snapshot {"name", "type", "cursor", "acked"} (q = the URL-quoted name)
    subscriptions/sub-<q>.acks  journal of acked (or skipped) offsets since the snapshot, u64 little-endian

Failure semantics:
- Every append and every ack is one ``write()`` before the RPC answers, so everything the broker
  acknowledged survives a SIGKILL of the broker process. Surviving a machine crash depends on the
  fsync policy (``always``: before answering; ``interval``: within the interval; ``never``: the OS decides).
- A torn record at the end of the log (crash mid-write) fails its length or CRC check on open and is cut off;
  it was never acknowledged to its producer. A torn journal entry (< 8 bytes) is ignored likewise.
- A write refused by the disk (ENOSPC after the first bytes of a record, EROFS, EIO) raises ``OSError`` naming
  the file, and the part that reached the file is cut off at once: the log and the journal never hold a torn
  entry between two good ones, so the next write after space returns lands where it belongs. Nothing of a
  refused write is kept; the caller answers its RPC with an error.
- Snapshots are written to a temporary file, fsynced and renamed over the old one before the journal is
  truncated; replaying a journal over a newer snapshot is harmless (acks are idempotent).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from danube_embedded_broker.config import FsyncPolicy

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_ACK = struct.Struct("<Q")
#: Journal entries written before the subscription snapshot is rewritten and the journal truncated.
JOURNAL_COMPACT_EVERY = 4096
#: Bodies of the most recent records each log keeps in memory (at least the last one), so dispatching a
#: message just written hands out the bytes it stored instead of reading them back from the file.
RECENT_BYTES = 1024 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _cut_to(fd: int, size: int) -> None:
    """Truncate the file to ``size`` unless it already has that size (a read-only file cannot be truncated,
    and usually nothing reached it)."""
    if os.fstat(fd).st_size != size:
        os.ftruncate(fd, size)


def _fsync_dir(directory: Path) -> None:
    """fsync a directory, so the names created or renamed in it survive a machine crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _name(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``filename`` set, so every message about it names the file (os.write does not)."""
    if exc.filename is None:
        exc.filename = str(path)
    return exc


class Durability:
    """Applies the fsync policy to the files it is told about."""

    def __init__(self, policy: FsyncPolicy) -> None:
        self.policy = policy
        self._dirty: dict[int, str] = {}

    def written(self, fd: int, what: str) -> None:
        """Call after a ``write()``: fsyncs now (``always``) or marks the file for the next ``sync_dirty``."""
        if self.policy == "always":
            os.fsync(fd)
        elif self.policy == "interval":
            self._dirty[fd] = what

    def forget(self, fd: int) -> None:
        self._dirty.pop(fd, None)

    def sync_dirty(self) -> None:
        """fsync every file written since the last call; errors are logged, never raised."""
        dirty, self._dirty = self._dirty, {}
        for fd, what in dirty.items():
            try:
                os.fsync(fd)
            except OSError as exc:
                log.warning("fsync of %s failed: %s", what, exc)

    def sync_file(self, fd: int) -> None:
        """fsync one file unless the policy is ``never`` (used on close and for snapshots)."""
        if self.policy != "never":
            os.fsync(fd)
        self._dirty.pop(fd, None)


def check_writable(data_dir: Path) -> None:
    """Raise ``OSError`` naming ``data_dir`` when no file can be created in it (read-only, no permission).

    Checked at start, so a broker on an unusable data dir refuses to start instead of failing every write
    later. A full disk passes (an empty file needs no space): its writes recover once space is freed.
    """
    probe = data_dir / ".write-probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        probe.unlink()
    except OSError as exc:
        raise OSError(exc.errno, f"data dir {data_dir} is not writable: {exc.strerror}") from None


def topic_dir(data_dir: Path, namespace: str, local: str) -> Path:
    return data_dir / "topics" / namespace / local


@dataclass(frozen=True)
class TopicMeta:
    name: str
    dispatch_strategy: int


def write_topic_meta(directory: Path, meta: TopicMeta, policy: FsyncPolicy = "interval") -> None:
    """Write ``meta.json`` (temporary file, fsync, rename, fsync of the directory unless ``policy`` is
    ``never``). Without the fsyncs a machine crash or a filesystem error soon after can leave an empty
    ``meta.json`` (delayed allocation), and a topic whose metadata cannot be read is not loaded at all."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "meta.json.tmp"
    body = json.dumps({"name": meta.name, "dispatch_strategy": meta.dispatch_strategy}).encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, body)
            if policy != "never":
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, directory / "meta.json")
        if policy != "never":
            _fsync_dir(directory)
    except OSError as exc:
        raise _name(exc, tmp) from None


def scan_topics(data_dir: Path) -> Iterator[tuple[Path, TopicMeta]]:
    """Every topic directory with a readable ``meta.json``; unreadable ones are logged and skipped."""
    for meta_path in sorted((data_dir / "topics").glob("*/*/meta.json")):
        try:
            raw = json.loads(meta_path.read_text())
            yield meta_path.parent, TopicMeta(str(raw["name"]), int(raw["dispatch_strategy"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("skipping topic metadata %s: %s", meta_path, exc)


class TopicLog:
    """Append-only record log of one reliable topic; record ``i`` has topic offset ``i``."""

    def __init__(self, path: Path, durability: Durability) -> None:
        self.path = path
        self._durability = durability
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._positions = array("Q")
        self._end = 0
        #: A refused write left bytes after ``_end`` that could not be cut off yet: cut before appending.
        self._torn = False
        #: offset -> body of the latest records (oldest first), at most RECENT_BYTES of bodies
        self._recent: dict[int, bytes] = {}
        self._recent_bytes = 0
        self._recover()

    def _recover(self) -> None:
        size = os.fstat(self._fd).st_size
        pos = 0
        while pos + _HEADER.size <= size:
            length, crc = _HEADER.unpack(os.pread(self._fd, _HEADER.size, pos))
            if pos + _HEADER.size + length > size:
                break
            body = os.pread(self._fd, length, pos + _HEADER.size)
            if zlib.crc32(body) != crc:
                break
            self._positions.append(pos)
            pos += _HEADER.size + length
        if pos != size:
            log.warning("%s: cutting %d bytes of torn tail at %d", self.path, size - pos, pos)
            os.ftruncate(self._fd, pos)
        self._end = pos

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def next_offset(self) -> int:
        return len(self._positions)

    def append(self, body: bytes) -> int:
        """Write one record and return its offset.

        Raises ``OSError`` (``filename`` = the log) when the disk refuses the write; then nothing was
        stored: the part of the record that reached the file is cut off, and if even that fails the next
        append cuts it first (and fails the same way until it can).
        """
        record = _HEADER.pack(len(body), zlib.crc32(body)) + body
        try:
            if self._torn:
                _cut_to(self._fd, self._end)
                self._torn = False
            _write_all(self._fd, record)
            self._durability.written(self._fd, str(self.path))
        except OSError as exc:
            self._torn = True
            with contextlib.suppress(OSError):
                _cut_to(self._fd, self._end)
                self._torn = False
            raise _name(exc, self.path) from None
        offset = len(self._positions)
        self._positions.append(self._end)
        self._end += len(record)
        recent = self._recent
        recent[offset] = body
        self._recent_bytes += len(body)
        while self._recent_bytes > RECENT_BYTES and len(recent) > 1:
            self._recent_bytes -= len(recent.pop(next(iter(recent))))
        return offset

    def read(self, offset: int) -> bytes:
        """The record body at ``offset``; raises ``IndexError`` for an offset not in the log."""
        body = self._recent.get(offset)
        if body is not None:
            return body
        pos = self._positions[offset]
        end = self._positions[offset + 1] if offset + 1 < len(self._positions) else self._end
        return os.pread(self._fd, end - pos - _HEADER.size, pos + _HEADER.size)

    def close(self) -> None:
        """Flush (per the fsync policy) and close; the file is closed even when the flush fails."""
        if self._fd < 0:
            return
        try:
            self._durability.sync_file(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1


@dataclass
class CursorState:
    """Acknowledgement state of a subscription.

    ``cursor`` is the highest offset such that every offset ``<= cursor`` is acked (``-1``: none);
    ``acked`` holds the acked offsets above it (out-of-order acks), so a restart forgets every acked
    message and keeps every unacked one.
    """

    cursor: int = -1
    acked: set[int] = field(default_factory=set)

    def ack(self, offset: int) -> bool:
        """Record an ack; ``False`` when it was already acked."""
        if offset <= self.cursor or offset in self.acked:
            return False
        if offset == self.cursor + 1:
            self.cursor = offset
            while self.cursor + 1 in self.acked:
                self.cursor += 1
                self.acked.discard(self.cursor)
        else:
            self.acked.add(offset)
        return True

    def is_acked(self, offset: int) -> bool:
        return offset <= self.cursor or offset in self.acked


class SubscriptionStore:
    """Snapshot plus ack journal of one subscription of a reliable topic."""

    def __init__(self, directory: Path, name: str, durability: Durability) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stem = "sub-" + quote(name, safe="")
        self.name = name
        self._snapshot = directory / f"{stem}.json"
        self._journal_path = directory / f"{stem}.acks"
        self._durability = durability
        self._fd = -1
        self._journal_entries = 0
        self._journal_size = 0
        self._journal_torn = False

    @staticmethod
    def names_in(directory: Path) -> list[str]:
        """Subscription names stored under ``directory``."""
        if not directory.is_dir():
            return []
        return sorted(unquote(p.name[len("sub-") : -len(".json")]) for p in directory.glob("sub-*.json"))

    def load(self) -> tuple[int, CursorState] | None:
        """``(subscription_type, state)`` from snapshot + journal, or ``None`` when never stored."""
        if not self._snapshot.exists():
            return None
        raw = json.loads(self._snapshot.read_text())
        state = CursorState(int(raw["cursor"]), {int(x) for x in raw.get("acked", [])})
        if self._journal_path.exists():
            data = self._journal_path.read_bytes()
            usable = len(data) - len(data) % _ACK.size
            for (offset,) in _ACK.iter_unpack(data[:usable]):
                state.ack(offset)
            self._journal_entries = usable // _ACK.size
        return int(raw["type"]), state

    def open(self) -> None:
        """Open the journal for appending; a torn last entry (crash mid-write) is cut off first, or every
        entry after it would be read misaligned."""
        if self._fd < 0:
            fd = os.open(self._journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(fd).st_size
            self._journal_size = size - size % _ACK.size
            try:
                _cut_to(fd, self._journal_size)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd

    def write_snapshot(self, sub_type: int, state: CursorState) -> None:
        """Persist the full state and truncate the journal (fsynced unless the policy is ``never``)."""
        self.open()
        tmp = self._snapshot.with_suffix(".json.tmp")
        body = json.dumps(
            {"name": self.name, "type": sub_type, "cursor": state.cursor, "acked": sorted(state.acked)}
        ).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, body)
                if self._durability.policy != "never":
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._snapshot)
            if self._durability.policy != "never":
                _fsync_dir(self._snapshot.parent)
        except OSError as exc:
            # The old snapshot and the journal are untouched: together they still hold every ack.
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _name(exc, tmp) from None
        os.ftruncate(self._fd, 0)
        self._journal_entries = 0
        self._journal_size = 0
        self._journal_torn = False

    def record_ack(self, offset: int, sub_type: int, state: CursorState) -> None:
        """Journal one ack (``state`` already includes it); compacts the journal now and then.

        Raises ``OSError`` (``filename`` = the journal) when the disk refuses the entry; the part of it
        that reached the file is cut off (or, failing that, before the next entry). A failed compaction
        is only logged: the journal still holds the ack, and compaction is tried again later.
        """
        self.open()
        try:
            if self._journal_torn:
                _cut_to(self._fd, self._journal_size)
                self._journal_torn = False
            _write_all(self._fd, _ACK.pack(offset))
            self._durability.written(self._fd, str(self._journal_path))
        except OSError as exc:
            self._journal_torn = True
            with contextlib.suppress(OSError):
                _cut_to(self._fd, self._journal_size)
                self._journal_torn = False
            raise _name(exc, self._journal_path) from None
        self._journal_size += _ACK.size
        self._journal_entries += 1
        if self._journal_entries >= JOURNAL_COMPACT_EVERY:
            try:
                self.write_snapshot(sub_type, state)
            except OSError as exc:
                log.warning("compaction of %s postponed: %s", self._journal_path, exc)
                self._journal_entries = 0  # try again after as many acks, not on every ack

    def close(self, sub_type: int, state: CursorState) -> None:
        """Write the final snapshot and close the journal (closed even when the snapshot fails; then the
        old snapshot plus the journal still hold every ack that was journaled)."""
        try:
            self.write_snapshot(sub_type, state)
        finally:
            if self._fd >= 0:
                self._durability.forget(self._fd)
                os.close(self._fd)
                self._fd = -1
