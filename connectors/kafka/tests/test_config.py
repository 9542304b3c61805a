"""Configuration and record mapping without a broker: the example loads, bad settings are errors naming
the key, SASL/TLS settings reach the client, the password stays secret; Kafka records become the
documented payloads, routing keys and attributes."""

from __future__ import annotations

import base64
import datetime
import ssl
from pathlib import Path

import orjson
import pytest
from danube_connect_core import ConfigError
from danube_connect_core.config_loader import load_config
from danube_connect_core.testing import make_config
from danube_source_kafka.connector import KafkaSource, _consumer
from danube_source_kafka.records import attributes_of, build_record, routing_key
from danube_source_kafka.settings import KafkaSettings

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
MAPPING = 'kafka_topic = "t"\ndanube_topic = "/default/t"'
HEAD = 'danube_service_url = "http://127.0.0.1:6650"\nconnector_name = "c"\n'


def load(path: Path, environ: dict[str, str] | None = None) -> KafkaSettings:
    return load_config(path, KafkaSource.config_spec(), environ=environ or {}).settings_as(KafkaSettings)


def test_the_example_loads_as_written() -> None:
    s = load(CONFIG_DIR / "kafka-source.toml")
    assert s.bootstrap_servers == "127.0.0.1:9092" and s.group_id == "danube-bridge"
    assert s.start_position == "earliest" and s.effective_protocol == "PLAINTEXT"
    orders, events = s.topic_mappings
    assert (orders.kafka_topic, orders.danube_topic, orders.partitions) == ("orders", "/default/orders", 3)
    assert events.matches("events.eu") and not events.matches("events.eu.x") and not events.matches("events")
    assert s.mapping_for("events.us") is events and s.mapping_for("other") is None


async def test_environment_overrides_and_the_sasl_password_secret(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        HEAD + '[kafka]\nbootstrap_servers = "a:9092"\n[kafka.sasl]\nusername = "u"\n'
        '[[kafka.topic_mappings]]\nkafka_topic = "t"\ndanube_topic = "/default/t"\n'
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "bridge",
        "KAFKA_SASL_PASSWORD": "s3cret-value",
        "KAFKA_START_POSITION": "committed",
    }
    s = load(path, env)
    assert s.bootstrap_servers == "k1:9093,k2:9093" and s.start_position == "committed"
    assert s.sasl is not None and (s.sasl.mechanism, s.sasl.username) == ("SCRAM-SHA-512", "bridge")
    assert s.sasl.password.get_secret_value() == "s3cret-value"
    assert s.effective_protocol == "SASL_PLAINTEXT"
    assert "s3cret-value" not in repr(s) and "s3cret-value" not in str(s.model_dump())
    consumer = _consumer(s, make_config("http://127.0.0.1:6650", "c", s))
    assert consumer._client._sasl_mechanism == "SCRAM-SHA-512"
    assert consumer._client._sasl_plain_password == "s3cret-value"
    assert consumer._client._security_protocol == "SASL_PLAINTEXT"
    assert consumer._group_id == "c"  # defaults to connector_name
    assert consumer._auto_offset_reset == "none"  # committed: no reset


def test_the_password_is_named_by_an_environment_variable_in_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        HEAD + '[kafka]\nbootstrap_servers = "a:9092"\n'
        '[kafka.sasl]\nusername = "u"\npassword = "BRIDGE_PW"\n'
        '[[kafka.topic_mappings]]\nkafka_topic = "t"\ndanube_topic = "/default/t"\n'
    )
    monkeypatch.setenv("BRIDGE_PW", "pw")
    assert load(path).sasl.password.get_secret_value() == "pw"  # type: ignore[union-attr]
    monkeypatch.delenv("BRIDGE_PW")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "BRIDGE_PW" in str(err.value) and err.value.key == "kafka.sasl.password"


async def test_tls_files_build_the_ssl_context(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    s = KafkaSettings.model_validate(
        {
            "bootstrap_servers": "a:9093",
            "tls": {"ca_file": str(ca)},
            "topic_mappings": [{"kafka_topic": "t", "danube_topic": "/default/t"}],
        }
    )
    assert s.effective_protocol == "SSL"
    consumer = _consumer(s, make_config("http://127.0.0.1:6650", "c", s))
    context = consumer._client._ssl_context
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "test-ca"),),)


@pytest.mark.parametrize(
    ("section", "mapping", "key"),
    [
        ("", 'kafka_topic = "t"\ndanube_topic = "/default/t"', "kafka.bootstrap_servers"),
        ('bootstrap_servers = "a"', 'danube_topic = "/default/t"', "kafka.topic_mappings[0]"),
        ('bootstrap_servers = "a"', 'kafka_topic = "t"\nkafka_pattern = "t.*"\ndanube_topic = "/default/t"',
         "kafka.topic_mappings[0]"),
        ('bootstrap_servers = "a"', 'kafka_topic = "bad name"\ndanube_topic = "/default/t"',
         "kafka.topic_mappings[0].kafka_topic"),
        ('bootstrap_servers = "a"', 'kafka_pattern = "("\ndanube_topic = "/default/t"',
         "kafka.topic_mappings[0].kafka_pattern"),
        ('bootstrap_servers = "a"', 'kafka_topic = "t"\ndanube_topic = "t"',
         "kafka.topic_mappings[0].danube_topic"),
        ('bootstrap_servers = "a"', 'kafka_topic = "t"\ndanube_topic = "/default/t"\nbogus = 1',
         "kafka.topic_mappings[0].bogus"),
        ('bootstrap_servers = "a"\nstart_position = "middle"', MAPPING, "kafka.start_position"),
        ('bootstrap_servers = "a"\nsecurity_protocol = "SASL_SSL"', MAPPING, "kafka"),
    ],
)  # fmt: skip
def test_bad_settings_are_config_errors_naming_the_key(
    tmp_path: Path, section: str, mapping: str, key: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"{HEAD}[kafka]\n{section}\n[[kafka.topic_mappings]]\n{mapping}\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert err.value.key == key, str(err.value)


def test_attributes_keys_and_headers() -> None:
    headers = [("trace", b"t-1"), ("tag", b"a"), ("tag", b"b"), ("blob", b"\xff\x00"), ("kafka.topic", b"x")]
    attrs = attributes_of("orders", 2, 41, 1_700_000_000_123, 1, headers)
    assert attrs["trace"] == "t-1"
    assert orjson.loads(attrs["tag"]) == ["a", "b"]
    assert base64.b64decode(attrs["blob"]) == b"\xff\x00" and attrs["kafka.binary_headers"] == "blob"
    assert attrs["kafka.topic"] == "orders"  # the coordinates win over a header of the same name
    assert (attrs["kafka.partition"], attrs["kafka.offset"]) == ("2", "41")
    assert (attrs["kafka.timestamp"], attrs["kafka.timestamp_type"]) == ("1700000000123", "log_append")
    assert routing_key(b"k-1") == ("k-1", False)
    assert routing_key(b"\xff\x01") == (base64.b64encode(b"\xff\x01").decode(), True)
    assert routing_key(None) == (None, False) and routing_key(b"") == (None, False)


@pytest.mark.parametrize(
    ("fmt", "value", "kind", "payload", "reason"),
    [
        ("bytes", b"\xff raw", "bytes", b"\xff raw", None),
        ("json", b'{"a": 1.50}', "bytes", b'{"a": 1.50}', None),  # byte for byte, never re-serialised
        ("json", b"not json", "bytes", b"not json", "value is not valid JSON"),
        ("string", "é".encode(), "string", "é", None),
        ("string", b"\xff", "bytes", b"\xff", "value is not UTF-8 text"),
        ("auto", b"[1, 2]", "bytes", b"[1, 2]", None),
        ("auto", b"plain text", "string", "plain text", None),
        ("auto", b"\xff\xfe", "bytes", b"\xff\xfe", None),
        ("json_schema", b"anything", "bytes", b"anything", None),  # the core's codec validates it
        ("number", b"42", "json", 42, None),
    ],
)
def test_payload_formats(fmt: str, value: bytes, kind: str, payload: object, reason: str | None) -> None:
    record, why = build_record("/default/t", fmt, value, "k", {})  # type: ignore[arg-type]
    assert (record.kind, record.payload, record.key) == (kind, payload, "k")
    assert (why or "").startswith(reason or "") and (why is None) == (reason is None)


def test_a_tombstone_is_an_empty_payload_with_its_attribute() -> None:
    record, why = build_record("/default/t", "bytes", None, "k", {})
    assert (record.payload, why, record.attributes["kafka.tombstone"]) == (b"", None, "true")
    _, why = build_record("/default/t", "json", None, "k", {})
    assert why is not None and why.startswith("value is not valid JSON")  # dead-lettered
