"""URL forms, the [surrealdb] section, secrets and config errors (exit 2 naming file and key)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from danube_connect_core.config_loader import load_config
from danube_connect_core.errors import ConfigError
from danube_sink_surrealdb.connector import SurrealDbSink
from danube_sink_surrealdb.settings import SurrealDbSettings
from danube_sink_surrealdb.testing import surrealkv_config
from danube_sink_surrealdb.url import normalize_url

ROOT = Path(__file__).resolve().parents[3]

SEED_SINK_TOML = """\
danube_service_url = "http://danube-broker:6650"
connector_name = "surrealdb-sink-e2e"

[surrealdb]
url = "surrealdb:8000"
namespace = "default"
database = "default"
username = "root"
password = "root"

# Topic → Table mapping
[[surrealdb.topic_mappings]]
topic = "/stripe/payments"               # Logical topic (partitions transparent!)
subscription = "surrealdb-payment-sink"
subscription_type = "Shared"             # Parallel consumption
table = "stripe_payments"
expected_schema_subject = "stripe-payment-v1"  # Verify schema
batch_size = 50
flush_interval_ms = 1000
"""


@pytest.mark.parametrize(
    ("url", "sdk_url", "embedded"),
    [
        ("surrealdb:8000", "ws://surrealdb:8000/rpc", False),
        ("localhost:8000", "ws://localhost:8000/rpc", False),
        ("ws://db:8000", "ws://db:8000/rpc", False),
        ("ws://db:8000/rpc", "ws://db:8000/rpc", False),
        ("wss://db.example.com", "wss://db.example.com/rpc", False),
        ("http://db:8000", "http://db:8000", False),
        ("https://db:8000", "https://db:8000", False),
        ("mem://", "mem://", True),
        ("memory", "mem://", True),
        ("surrealkv:///var/lib/surreal", "surrealkv:///var/lib/surreal", True),
    ],
)
def test_url_forms(url: str, sdk_url: str, embedded: bool) -> None:
    parsed = normalize_url(url)
    assert (parsed.sdk_url, parsed.embedded) == (sdk_url, embedded)


@pytest.mark.parametrize("url", ["", "surrealdb", "ftp://x:1", "surrealkv://", "ws://"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_url(url)


def test_url_display_hides_credentials() -> None:
    assert normalize_url("ws://root:s3cret@db:8000").display == "ws://db:8000/rpc"


def test_seed_toml_loads_with_inline_password_and_env_wins(tmp_path: Path) -> None:
    path = tmp_path / "sink.toml"
    path.write_text(SEED_SINK_TOML)
    config = load_config(path, SurrealDbSink.config_spec(), environ={})
    settings = config.settings_as(SurrealDbSettings)
    assert settings.url == "surrealdb:8000"
    assert settings.password_inline
    assert settings.secret_password() == "root"
    assert "password=SecretStr('**********')" in repr(settings)  # invariant 7
    m = settings.topic_mappings[0]
    assert (m.table, m.batch_size, m.flush_interval_ms, m.expected_schema_subject) == (
        "stripe_payments",
        50,
        1000,
        "stripe-payment-v1",
    )

    env = {"SURREALDB_PASSWORD": "from-env", "SURREALDB_URL": "surrealkv:///tmp/x", "SURREALDB_USERNAME": "u"}
    config = load_config(path, SurrealDbSink.config_spec(), environ=env)
    settings = config.settings_as(SurrealDbSettings)
    assert (settings.url, settings.username, settings.secret_password()) == (
        "surrealkv:///tmp/x",
        "u",
        "from-env",
    )
    assert not settings.password_inline


def test_password_env_names_a_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sink.toml"
    path.write_text(SEED_SINK_TOML.replace('password = "root"', 'password_env = "MY_SURREAL_PASS"'))
    with pytest.raises(ConfigError, match="MY_SURREAL_PASS is not set"):
        load_config(path, SurrealDbSink.config_spec(), environ={})
    monkeypatch.setenv("MY_SURREAL_PASS", "pw")
    settings = load_config(path, SurrealDbSink.config_spec(), environ={}).settings_as(SurrealDbSettings)
    assert settings.secret_password() == "pw" and not settings.password_inline


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            'table = "stripe_payments"',
            'table = "stripe payments; DELETE x"',
            "surrealdb.topic_mappings[0].table",
        ),
        ('url = "surrealdb:8000"', 'url = "ftp://x"', "surrealdb.url"),
        ("batch_size = 50", 'batch_size = 50\ncolour = "red"', "surrealdb.topic_mappings[0].colour"),
        ('subscription_type = "Shared"', 'subscription_type = "Everyone"', "subscription_type"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = tmp_path / "sink.toml"
    path.write_text(SEED_SINK_TOML.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(path, SurrealDbSink.config_spec(), environ={})
    assert str(path) in str(info.value) and key in str(info.value)


@pytest.mark.integration  # console script processes
def test_console_script_check_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(SEED_SINK_TOML)
    bad = tmp_path / "bad.toml"
    bad.write_text(SEED_SINK_TOML.replace("table = ", "tabel = "))
    script = Path(sys.executable).parent / "danube-sink-surrealdb"
    ok = subprocess.run([str(script), "--config", str(good), "--check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    err = subprocess.run([str(script), "--config", str(bad), "--check"], capture_output=True, text=True)
    assert err.returncode == 2
    assert "topic_mappings[0].table" in err.stderr and "password" not in err.stderr


def test_example_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURREALDB_PASSWORD", "x")
    config = load_config(
        ROOT / "connectors/surrealdb/config/surrealdb-sink.toml", SurrealDbSink.config_spec()
    )
    assert config.settings_as(SurrealDbSettings).topic_mappings[0].include_metadata


def test_surrealkv_config_moves_only_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURREALDB_PASSWORD", "pw")
    example = ROOT / "connectors" / "surrealdb" / "config" / "surrealdb-sink.toml"
    spec = SurrealDbSink.config_spec()
    original = load_config(example, spec, environ={}).settings_as(SurrealDbSettings)
    for query_api in (False, True):
        path = tmp_path / f"sink-{query_api}.toml"
        path.write_text(surrealkv_config(example, tmp_path / "store", query_api=query_api))
        settings = load_config(path, spec, environ={}).settings_as(SurrealDbSettings)
        assert settings.url == f"surrealkv://{tmp_path / 'store'}"
        assert settings.topic_mappings == original.topic_mappings
        assert (settings.query_api.enabled, settings.query_api.port) == (
            (True, 0) if query_api else (original.query_api.enabled, original.query_api.port)
        )
