"""Unit tests: settings, point ids, record -> point mapping, failure classification."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.config_loader import load_config
from danube_connect_core.errors import ConfigError, InvalidData
from danube_connect_core.records import SinkRecord
from danube_sink_qdrant import QdrantSink
from danube_sink_qdrant.failures import classify
from danube_sink_qdrant.location import parse_location
from danube_sink_qdrant.point_ids import NAMESPACE, point_id_for_key, point_id_for_message
from danube_sink_qdrant.points import to_point
from danube_sink_qdrant.settings import QdrantSettings, QdrantTopicMapping
from qdrant_client.http.exceptions import UnexpectedResponse

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "qdrant-sink.toml"


def mapping(**kw: Any) -> QdrantTopicMapping:
    base: dict[str, Any] = {
        "topic": "/default/docs",
        "subscription": "s",
        "collection": "docs",
        "vector_field": "embedding",
        "dimension": 3,
    }
    base.update(kw)
    return QdrantTopicMapping.model_validate(base)


def record(payload: Any, offset: int = 7, partition: int | None = 1) -> SinkRecord:
    return SinkRecord(
        payload=payload,
        topic="/default/docs",
        partition=partition,
        offset=offset,
        publish_time=123,
        producer_name="p",
        attributes={"a": "b"},
        schema=None,
        key="k",
    )


def test_example_config_loads_with_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_URL", "http://qdrant.internal:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "s3cret")
    config = load_config(EXAMPLE, QdrantSink.config_spec())
    s = config.settings_as(QdrantSettings)
    assert s.url == "http://qdrant.internal:6333"
    assert s.secret_api_key() == "s3cret"
    assert "s3cret" not in repr(s)
    assert [m.collection for m in s.topic_mappings] == ["documents", "products"]


def test_api_key_in_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'danube_service_url = "http://x:6650"\nconnector_name = "q"\n[qdrant]\nurl = ":memory:"\n'
        'api_key = "plain"\n[[qdrant.topic_mappings]]\ntopic = "/default/t"\nsubscription = "s"\n'
        'collection = "c"\nvector_field = "v"\ndimension = 2\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, QdrantSink.config_spec(), environ={})
    assert "qdrant.api_key" in str(err.value) and "plain" not in str(err.value)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"vectors": {"a": "x"}}, "exactly one of"),
        ({"vector_field": None}, "exactly one of"),
        ({"dimension": None}, "auto_create needs dimension"),
        ({"vector_field": None, "vectors": {"a": "x", "b": "y"}, "dimension": {"a": 2}}, "no entry"),
        ({"collection": "bad name"}, "letters"),
    ],
)
def test_mapping_validation(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mapping(**kw)


def test_locations() -> None:
    assert parse_location(":memory:").memory
    assert parse_location("path:/data/q").path == "/data/q"
    loc = parse_location("https://user:pw@q.example:6333")
    assert loc.url and not loc.local and "pw" not in loc.display
    for bad in ("path:", "q.example:6333", "ftp://x"):
        with pytest.raises(ValueError):
            parse_location(bad)


def test_point_ids_are_deterministic() -> None:
    assert point_id_for_message("/default/t:1:5") == str(uuid.uuid5(NAMESPACE, "/default/t:1:5"))
    assert point_id_for_message("/default/t:1:5") != point_id_for_message("/default/t:1:6")
    assert point_id_for_key(42, "id") == 42
    assert point_id_for_key(42.0, "id") == 42
    assert point_id_for_key("doc-1", "id") == str(uuid.uuid5(NAMESPACE, "doc-1"))
    assert point_id_for_key(-3, "id") == str(uuid.uuid5(NAMESPACE, "-3"))
    for bad in (None, True, {"a": 1}, [1], ""):
        with pytest.raises(InvalidData):
            point_id_for_key(bad, "id")


def test_point_from_record_default_payload_drops_vectors() -> None:
    p = to_point(record({"embedding": [1, 2.5, 3], "title": "t", "n": 1}), mapping(), {"": 3})
    assert p.vector == [1.0, 2.5, 3.0]
    assert p.payload == {"title": "t", "n": 1}
    assert p.id == point_id_for_message("/default/docs:1:7")


def test_point_named_vectors_key_field_payload_fields_metadata() -> None:
    m = mapping(
        vector_field=None,
        vectors={"text": "emb.text", "image": "emb.image"},
        dimension={"text": 2, "image": 1},
        id_field="doc.id",
        payload_fields=["title", "doc.id", "absent"],
        include_metadata=True,
    )
    p = to_point(
        record({"emb": {"text": [1, 2], "image": [3]}, "title": "x", "doc": {"id": 9}, "other": 1}),
        m,
        {"text": 2, "image": 1},
    )
    assert p.id == 9
    assert p.vector == {"text": [1.0, 2.0], "image": [3.0]}
    meta = p.payload.pop("_danube")
    assert p.payload == {"title": "x", "doc.id": 9}
    assert meta["message_id"] == "/default/docs:1:7" and meta["attributes"] == {"a": "b"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([1, 2, 3], "JSON object"),
        ({"x": 1}, "is missing"),
        ({"embedding": "1,2,3"}, "array of numbers"),
        ({"embedding": [1, "2", 3]}, "[1] is not a number"),
        ({"embedding": [1, True, 3]}, "[1] is not a number"),
        ({"embedding": [1, 2]}, "dimension 2, the collection expects 3"),
        ({"embedding": [1, 2, float("nan")]}, "not finite"),
    ],
)
def test_invalid_records(payload: Any, reason: str) -> None:
    with pytest.raises(InvalidData, match=reason.replace("[", r"\[")):
        to_point(record(payload), mapping(), {"": 3})


def test_missing_key_field_is_invalid() -> None:
    with pytest.raises(InvalidData, match="id_field 'id' is missing"):
        to_point(record({"embedding": [1, 2, 3]}), mapping(id_field="id"), {"": 3})


def test_classification() -> None:
    def resp(status: int) -> UnexpectedResponse:
        import httpx

        return UnexpectedResponse(status, "x", b"body", httpx.Headers())

    assert classify(resp(400), local=False) == "invalid"
    assert classify(resp(401), local=False) == "fatal"
    assert classify(resp(404), local=False) == "retryable"
    assert classify(resp(503), local=False) == "retryable"
    assert classify(ConnectionRefusedError(), local=False) == "retryable"
    assert classify(ValueError("bad vector"), local=True) == "invalid"
    assert classify(ValueError("x"), local=False) == "retryable"
