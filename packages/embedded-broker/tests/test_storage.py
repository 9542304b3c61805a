"""Storage units: cursor arithmetic, torn-tail recovery, journal replay and compaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from danube_embedded_broker import storage
from danube_embedded_broker.storage import CursorState, Durability, SubscriptionStore, TopicLog


def test_cursor_state_contiguous_and_out_of_order() -> None:
    state = CursorState(cursor=4)
    assert not state.ack(3)
    assert state.ack(6) and state.cursor == 4 and state.acked == {6}
    assert state.ack(7) and state.ack(5)
    assert state.cursor == 7 and state.acked == set()
    assert not state.ack(7)
    assert state.is_acked(2) and not state.is_acked(8)


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_log_append_read_and_torn_tail(tmp_path: Path, policy: str) -> None:
    durability = Durability(policy)  # type: ignore[arg-type]
    log = TopicLog(tmp_path / "log.dat", durability)
    assert [log.append(f"m{i}".encode()) for i in range(3)] == [0, 1, 2]
    durability.sync_dirty()
    log.close()
    with open(tmp_path / "log.dat", "ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # a record cut short by a crash
    log = TopicLog(tmp_path / "log.dat", durability)
    assert log.next_offset == 3 and log.read(2) == b"m2"
    assert log.append(b"m3") == 3
    log.close()
    log = TopicLog(tmp_path / "log.dat", durability)
    assert [log.read(i) for i in range(4)] == [b"m0", b"m1", b"m2", b"m3"]
    log.close()


def test_corrupted_record_is_cut(tmp_path: Path) -> None:
    log = TopicLog(tmp_path / "log.dat", Durability("never"))
    log.append(b"good")
    log.append(b"soon bad")
    log.close()
    data = bytearray((tmp_path / "log.dat").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "log.dat").write_bytes(bytes(data))
    log = TopicLog(tmp_path / "log.dat", Durability("never"))
    assert log.next_offset == 1
    log.close()


def test_store_journal_replay_and_compaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "JOURNAL_COMPACT_EVERY", 4)
    durability = Durability("never")
    store = SubscriptionStore(tmp_path, "sub/with odd:name", durability)
    assert store.load() is None
    state = CursorState(cursor=-1)
    store.write_snapshot(1, state)
    for offset in (0, 2, 5, 1, 3, 9, 4):
        state.ack(offset)
        store.record_ack(offset, 1, state)
    # simulate a kill: no close(), plus a torn journal entry
    with open(next(tmp_path.glob("*.acks")), "ab") as f:
        f.write(b"\x01\x02")
    loaded = SubscriptionStore(tmp_path, "sub/with odd:name", durability).load()
    assert loaded is not None
    sub_type, restored = loaded
    assert sub_type == 1 and restored.cursor == 5 and restored.acked == {9}
    assert SubscriptionStore.names_in(tmp_path) == ["sub/with odd:name"]
    assert os.path.getsize(next(tmp_path.glob("*.acks"))) < 8 * 7 + 2  # compacted at least once


def test_recent_records_come_from_memory_older_ones_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "RECENT_BYTES", 10)
    log = TopicLog(tmp_path / "log.dat", Durability("never"))
    bodies = [f"body-{i}".encode() for i in range(6)]  # 6 bytes each: the last one kept in memory
    for body in bodies:
        log.append(body)
    os.truncate(tmp_path / "log.dat", 0)  # tells the two paths apart: the file is empty now
    assert log.read(5) == bodies[5]  # the newest record: from memory
    assert log.read(4) == b""  # an older one: read from the (now empty) file
    log.close()
    log = TopicLog(tmp_path / "log.dat", Durability("never"))
    assert log.next_offset == 0
    for body in bodies:
        log.append(body)
    log.close()
    log = TopicLog(tmp_path / "log.dat", Durability("never"))  # a reopened log reads everything from the file
    assert [log.read(i) for i in range(6)] == bodies
    log.close()
