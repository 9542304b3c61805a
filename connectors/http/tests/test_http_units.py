"""Unit tests: status policy, Retry-After, idempotency keys, bodies, settings and secrets."""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import orjson
import pytest
from danube_connect_core.config_loader import load_config
from danube_connect_core.errors import ConfigError, InvalidData
from danube_connect_core.records import SinkRecord
from danube_sink_http import HttpSettings, HttpSink
from danube_sink_http.bodies import batch_body, record_body, record_json
from danube_sink_http.idempotency import batch_key, record_key
from danube_sink_http.retry_after import parse_retry_after
from danube_sink_http.sender import display_url
from danube_sink_http.status_policy import StatusPolicy

MAPPING = {"topic": "t", "subscription": "s"}
EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "http-sink.toml"


def record(payload: Any, offset: int = 3) -> SinkRecord:
    return SinkRecord(payload, "/default/t", 2, offset, 99, "prod", {"k": "v"}, None, "key")


def test_status_policy_defaults() -> None:
    s = HttpSettings.model_validate(
        {"url": "http://x", "topic_mappings": [{"topic": "t", "subscription": "s"}]}
    )
    p = StatusPolicy(s.success_codes, s.drop_codes)
    assert [p.outcome(c) for c in (200, 204, 400, 422, 408, 429, 500, 502, 503, 504, 501)] == [
        "success",
        "success",
        "drop",
        "drop",
        "retry",
        "retry",
        "retry",
        "retry",
        "retry",
        "retry",
        "drop",
    ]
    assert [p.outcome(c) for c in (401, 403, 407, 302, 418)] == ["fatal", "fatal", "fatal", "fatal", "drop"]
    custom = StatusPolicy([200, 409], [500])
    assert (
        custom.outcome(409) == "success" and custom.outcome(500) == "drop" and custom.outcome(201) == "fatal"
    )


def test_retry_after() -> None:
    assert parse_retry_after("2", cap_s=60) == 2.0
    assert parse_retry_after("120", cap_s=60) == 60.0
    assert parse_retry_after(None, cap_s=60) is None
    assert parse_retry_after("soon", cap_s=60) is None
    now = time.time()
    assert parse_retry_after(formatdate(now + 10, usegmt=True), cap_s=60, now=now) == pytest.approx(10, abs=1)
    assert parse_retry_after(formatdate(now - 10, usegmt=True), cap_s=60, now=now) == 0.0


def test_idempotency_keys_are_stable_and_distinct() -> None:
    assert record_key("/default/t:1:5") == record_key("/default/t:1:5")
    assert record_key("/default/t:1:5") != record_key("/default/t:1:6")
    assert batch_key(["a", "b"]) == batch_key(["a", "b"]) != batch_key(["b", "a"])
    assert batch_key(["a"]) != record_key("a")


def test_bodies() -> None:
    r = record({"a": 1})
    assert record_body(r, False).data == b'{"a":1}'
    wrapped = orjson.loads(record_body(r, True).data)
    assert wrapped["payload"] == {"a": 1} and wrapped["metadata"]["message_id"] == "/default/t:2:3"
    raw = record_body(record(b"\x00\x01"), False)
    assert raw.data == b"\x00\x01" and raw.content_type == "application/octet-stream"
    two = [record_json(r, False) for r in (record({"a": 1}, 1), record("text", 2))]
    assert orjson.loads(batch_body(two, "json_array").data) == [{"a": 1}, "text"]
    nd = batch_body(two, "ndjson")
    assert nd.data == b'{"a":1}\n"text"\n' and nd.content_type == "application/x-ndjson"


def test_bodies_write_big_integers_exactly_and_refuse_unwritable_records() -> None:
    big = 10**20 + 1
    assert record_body(record({"amount": big}), False).data == b'{"amount":100000000000000000001}'
    wrapped = record_body(record({"amount": -big}), True).data
    assert b'"payload":{"amount":-100000000000000000001}' in wrapped
    two = [record_json(r, False) for r in (record({"a": big}, 1), record([1, -(2**64)], 2))]
    assert batch_body(two, "json_array").data == b'[{"a":100000000000000000001},[1,-18446744073709551616]]'
    assert batch_body(two, "ndjson").data == b'{"a":100000000000000000001}\n[1,-18446744073709551616]\n'
    # a value JSON cannot hold (bytes nested in an Avro record) is refused per record: the sink rejects it
    bad = record({"blob": b"\x00"}, 5)
    with pytest.raises(InvalidData, match="cannot be written as JSON"):
        record_json(bad, False)
    with pytest.raises(InvalidData, match="cannot be written as JSON"):
        record_body(bad, False)


def test_display_url_hides_query_and_user() -> None:
    assert display_url("https://u@h.example:8443/p?api_key=secret") == "https://h.example:8443/p"


def test_example_config_and_env_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_SINK_TOKEN", "tok-123")
    config = load_config(EXAMPLE, HttpSink.config_spec())
    s = config.settings_as(HttpSettings)
    assert s.secret_token() == "tok-123" and "tok-123" not in repr(s)
    assert s.topic_mappings[1].body_mode == "ndjson" and s.topic_mappings[1].method == "PUT"


def test_bearer_without_token_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTP_SINK_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="HTTP_SINK_TOKEN"):
        load_config(EXAMPLE, HttpSink.config_spec())


def test_token_in_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'danube_service_url = "http://x:6650"\nconnector_name = "h"\n[http]\nurl = "http://t"\n'
        'auth = "bearer"\ntoken = "inline-secret"\n[[http.topic_mappings]]\ntopic = "t"\nsubscription = "s"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, HttpSink.config_spec(), environ={})
    assert "http.token" in str(err.value) and "inline-secret" not in str(err.value)


@pytest.mark.parametrize(
    ("http", "message"),
    [
        ({"url": "ftp://x"}, "http:// or https://"),
        ({"url": "http://u:pw@x"}, "password"),
        ({"url": "http://x", "success_codes": [200], "drop_codes": [200]}, "both"),
        ({"url": "http://x", "headers": {"bad name": "v"}}, "header name"),
        ({"url": "http://x", "auth": "basic"}, "username"),
    ],
)
def test_settings_validation(http: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpSettings.model_validate({**http, "topic_mappings": [{"topic": "t", "subscription": "s"}]})


async def test_header_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    from danube_connect_core.testing import make_config

    settings = HttpSettings.model_validate(
        {
            "url": "http://x",
            "headers": {"X-Tenant": "t-${TENANT}"},
            "topic_mappings": [{"topic": "t", "subscription": "s"}],
        }
    )
    monkeypatch.delenv("TENANT", raising=False)
    with pytest.raises(ConfigError, match="TENANT is not set"):
        await HttpSink().initialize(make_config("http://b:1", "h", settings))
    monkeypatch.setenv("TENANT", "acme")
    sink = HttpSink()
    await sink.initialize(make_config("http://b:1", "h", settings))
    assert sink.sender is not None and sink.sender._headers == {"X-Tenant": "t-acme"}
    await sink.shutdown()
