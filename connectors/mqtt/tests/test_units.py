"""Unit tests: topic filters, payload reading, in-order acks."""

from __future__ import annotations

import pytest
from danube_connect_core.errors import InvalidData
from danube_source_mqtt.ack_sequencer import AckSequencer
from danube_source_mqtt.payload import build_record, mqtt_attributes
from danube_source_mqtt.topic_filter import TopicFilter
from hypothesis import assume, given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("filt", "topic", "match"),
    [
        ("sensors/#", "sensors", True),
        ("sensors/#", "sensors/a/b", True),
        ("sensors/+/temp", "sensors/x/temp", True),
        ("sensors/+/temp", "sensors/x/y/temp", False),
        ("sensors/+", "sensors/", True),
        ("+/+", "/a", True),
        ("#", "$SYS/broker/load", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
        ("$share/g1/sensors/+/temp", "sensors/a/temp", True),
        ("$share/g1/sensors/+/temp", "$share/g1/sensors/a/temp", False),
        ("a/b", "a/b/c", False),
    ],
)
def test_filter_matching(filt: str, topic: str, match: bool) -> None:
    assert TopicFilter.parse(filt).matches(topic) is match


def test_share_prefix_is_kept_for_subscribing_and_stripped_for_matching() -> None:
    f = TopicFilter.parse("$share/group/a/#")
    assert (f.subscription, f.filter, f.share_group) == ("$share/group/a/#", "a/#", "group")


@given(st.lists(st.text(alphabet="abc", min_size=0, max_size=3), min_size=1, max_size=5))
def test_a_topic_matches_itself_hash_and_plus_per_level(levels: list[str]) -> None:
    topic = "/".join(levels)
    assume(topic != "")
    assert TopicFilter.parse(topic).matches(topic)
    assert TopicFilter.parse("#").matches(topic)
    assert TopicFilter.parse("/".join("+" for _ in levels)).matches(topic)
    assert not TopicFilter.parse("/".join("+" for _ in [*levels, "x"])).matches(topic)


def test_payload_auto_json_then_text_then_bytes() -> None:
    attrs = mqtt_attributes("t/1", 1, False)
    json_record = build_record("/iot/x", "auto", "t/1", b'{"a": 1.50}', attrs)
    assert (json_record.kind, json_record.payload) == ("bytes", b'{"a": 1.50}')  # as received
    text = build_record("/iot/x", "auto", "t/1", b"on", attrs)
    assert (text.kind, text.payload) == ("string", "on")
    raw = build_record("/iot/x", "auto", "t/1", b"\xff\x00", attrs)
    assert (raw.kind, raw.payload, raw.key) == ("bytes", b"\xff\x00", "t/1")
    assert raw.attributes == {"mqtt.topic": "t/1", "mqtt.qos": "1", "mqtt.retain": "false"}


def test_payload_formats_raise_invalid_data_about_the_payload() -> None:
    # How each format reads is the core's (packages/connect-core/tests/runtime/test_payload_format.py).
    assert build_record("/iot/x", "number", "t", b"1.50", {}).payload == 1.5
    with pytest.raises(InvalidData, match=r"^payload is not valid JSON: "):
        build_record("/iot/x", "json", "t", b"not json", {})
    with pytest.raises(InvalidData, match=r"^payload is not UTF-8 text$"):
        build_record("/iot/x", "string", "t", b"\xff", {})


def test_acks_go_out_in_arrival_order() -> None:
    sent: list[int] = []
    seq = AckSequencer(lambda mid, qos: sent.append(mid))
    tickets = [seq.track(mid, 1) for mid in (1, 2, 3, 4)]
    seq.done(tickets[2])
    seq.done(tickets[1])
    assert sent == []
    seq.done(tickets[0])
    assert sent == [1, 2, 3]
    seq.done(tickets[3])
    assert sent == [1, 2, 3, 4] and seq.waiting == 0


def test_a_copy_is_published_only_for_the_winning_subscription() -> None:
    from danube_source_mqtt.router import Route, Router, subscription_identifiers
    from danube_source_mqtt.settings import TopicMapping

    mappings = [
        TopicMapping(mqtt_topic="raw/#", danube_topic="/iot/raw"),
        TopicMapping(mqtt_topic="#", danube_topic="/iot/all"),
    ]
    router = Router([Route(m, m.topic_filter, "auto") for m in mappings])
    raw_id, all_id = router.identifiers
    assert router.route_copy("raw/x", [raw_id]) == (router.routes[0], False)
    assert router.route_copy("raw/x", [all_id]) == (None, True)  # the copy for "#": ack only
    assert router.route_copy("raw/x", [all_id, raw_id]) == (router.routes[0], False)  # one copy for both
    assert router.route_copy("other/y", [all_id]) == (router.routes[1], False)
    # No identifier (3.1.1) or only another configuration's: routed by topic, never dropped.
    assert router.route_copy("raw/x", None) == (router.routes[0], False)
    stale = subscription_identifiers(["#", "raw/#"])
    assert not set(stale) & set(router.identifiers)
    assert router.route_copy("raw/x", [stale[0]]) == (router.routes[0], False)
    assert router.route_copy("nothing", None) == (router.routes[1], False)
    assert all(1 <= i <= 268_435_455 for i in router.identifiers)


def test_repeated_user_properties_keep_every_value() -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = [("k", "1"), ("one", "x"), ("k", "2")]
    attrs = mqtt_attributes("t", 1, False, props)
    assert attrs["mqtt.user.k"] == '["1","2"]'
    assert attrs["mqtt.user.one"] == "x"
    assert attrs["mqtt.user_properties"] == '[["k","1"],["one","x"],["k","2"]]'
