"""MappingIndex: a record's mapping by (topic, subscription), by topic without one, Fatal when unmapped."""

from __future__ import annotations

from typing import Any

import pytest
from danube_connect_core.errors import Fatal
from danube_connect_core.mapping_index import MappingIndex
from danube_connect_core.records import SinkRecord


def _record(topic: str, subscription: str = "", offset: int = 1) -> SinkRecord:
    fields: dict[str, Any] = {
        "payload": {},
        "topic": topic,
        "partition": 0,
        "offset": offset,
        "publish_time": 0,
        "producer_name": "p",
        "attributes": {},
        "schema": None,
        "key": None,
        "subscription": subscription,
    }
    return SinkRecord(**fields)


def test_records_find_their_mapping_and_batches_split_in_arrival_order() -> None:
    index: MappingIndex[str] = MappingIndex()
    index.add("/default/a", "to-table-1", "table-1")
    index.add("/default/a", "to-table-2", "table-2")  # one topic, two subscriptions
    index.add("/default/b", "s", "table-b")
    batch = [
        _record("/default/a", "to-table-2", 1),
        _record("/default/b", "s", 2),
        _record("/default/a", "to-table-1", 3),
        _record("/default/a", "to-table-2", 4),
    ]
    groups = index.group(batch)
    assert [(m, [r.offset for r in rs]) for m, rs in groups] == [
        ("table-2", [1, 4]),
        ("table-b", [2]),
        ("table-1", [3]),
    ]
    # a record without a subscription (built in a test, replayed from a file): first mapping of its topic
    assert index.for_record(_record("/default/a")) == "table-1"


def test_an_unmapped_record_is_a_configuration_bug() -> None:
    index: MappingIndex[str] = MappingIndex()
    index.add("/default/a", "s", "only")
    with pytest.raises(Fatal, match="/default/zzz"):
        index.group([_record("/default/zzz", "s")])
    index.clear()
    with pytest.raises(Fatal):
        index.for_record(_record("/default/a", "s"))
