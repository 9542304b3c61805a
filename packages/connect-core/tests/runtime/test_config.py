"""Configuration: loading, env overrides, and every error path as a real `danube-connect validate` process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from danube_connect_core.config import MinimumVersion, PinnedVersion
from danube_connect_core.config_loader import ConfigSpec, load_config
from danube_connect_core.errors import ConfigError
from danube_connect_core.secrets import EnvSecret
from pydantic import BaseModel, ConfigDict

REPO = Path(__file__).resolve().parents[4]
PAYMENT_SCHEMA = REPO / "schemas" / "payment.json"


class AnySection(BaseModel):
    """Stands in for a connector's own model: the seeds' connector sections belong to other issues."""

    model_config = ConfigDict(extra="allow")


def write(tmp_path: Path, text: str, name: str = "connector.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the seed examples (000: webhook and SurrealDB, 001: MQTT) load as written --------------------------

WEBHOOK_TOML = """
danube_service_url = "http://danube-broker:6650"
connector_name = "webhook-source-e2e"

# Schema definition
[[schemas]]
topic = "/stripe/payments"
subject = "stripe-payment-v1"
schema_type = "json_schema"
schema_file = "schemas/payment.json"
auto_register = true

# HTTP endpoint configuration
[webhook]
host = "0.0.0.0"
port = 8080

[[webhook.endpoints]]
path = "/webhooks/stripe/payments"
danube_topic = "/stripe/payments"
partitions = 4                    # Parallel processing
reliable_dispatch = false
"""

SURREAL_TOML = """
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

MQTT_TOML = """
# Core Danube settings (provided by danube-connect-core)
danube_service_url = "http://danube-broker:6650"
connector_name = "mqtt-bridge"
# Connector-specific settings
[mqtt]
broker_host = "mosquitto"
broker_port = 1883
[[mqtt.topic_mappings]]
mqtt_topic = "sensors/#"
danube_topic = "/iot/sensors"
partitions = 8
"""


def test_seed_webhook_toml_loads(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "payment.json").write_bytes(PAYMENT_SCHEMA.read_bytes())
    path = write(tmp_path, WEBHOOK_TOML)
    config = load_config(path, ConfigSpec(section="webhook", model=AnySection), environ={})
    assert config.danube_service_url == "http://danube-broker:6650"
    assert config.connector_name == "webhook-source-e2e"
    (schema,) = config.schemas
    assert schema.subject == "stripe-payment-v1" and schema.schema_type == "json_schema"
    assert schema.schema_file == (tmp_path / "schemas" / "payment.json").resolve()
    assert schema.version_strategy == "latest"
    assert config.dead_letter_topic == "/default/webhook-source-e2e-dlq"
    assert config.settings.model_dump()["port"] == 8080


def test_seed_surrealdb_and_mqtt_toml_load(tmp_path: Path) -> None:
    surreal = load_config(
        write(tmp_path, SURREAL_TOML, "s.toml"), ConfigSpec("surrealdb", AnySection), environ={}
    )
    assert surreal.connector_name == "surrealdb-sink-e2e" and surreal.schemas == []
    mqtt = load_config(write(tmp_path, MQTT_TOML, "m.toml"), ConfigSpec("mqtt", AnySection), environ={})
    assert mqtt.connector_name == "mqtt-bridge"
    assert mqtt.processing.metrics_port == 9090 and mqtt.retry.max_retries == 3


def test_defaults_env_overrides_and_version_strategies(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"type": "object"}')
    path = write(
        tmp_path,
        """
danube_service_url = "http://a:6650"
connector_name = "from-toml"
[processing]
log_level = "debug"
[[schemas]]
topic = "/default/a"
subject = "a"
schema_type = "json_schema"
schema_file = "s.json"
version_strategy = { pinned = 2 }
[[schemas]]
topic = "/default/b"
subject = "b"
schema_type = "string"
version_strategy = { minimum = 1 }
""",
    )
    env = {
        "DANUBE_SERVICE_URL": "http://b:6650",
        "CONNECTOR_NAME": "from-env",
        "METRICS_PORT": "9191",
        "LOG_LEVEL": "WARN",
        "LOG_FORMAT": "text",
    }
    config = load_config(path, environ=env)
    assert config.danube_service_url == "http://b:6650"
    assert config.connector_name == "from-env"
    assert config.processing.metrics_port == 9191
    assert config.processing.log_level == "warn" and config.processing.log_format == "text"
    assert config.schemas[0].version_strategy == PinnedVersion(pinned=2)
    assert config.schemas[1].version_strategy == MinimumVersion(minimum=1)


class SecretSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "localhost"
    port: int = 80
    password: EnvSecret


def test_connector_env_overrides_and_secret_by_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'danube_service_url = "u"\nconnector_name = "c"\n[thing]\npassword = "THING_SECRET"\n',
    )
    spec = ConfigSpec("thing", SecretSection, env_prefix="THING")
    with pytest.raises(ConfigError) as err:  # the named variable is not set in this process
        load_config(path, spec, environ={"THING_PORT": "8081"})
    assert "thing.password" in str(err.value) and "THING_SECRET" in str(err.value)
    # <PREFIX>_<KEY> overrides: for a secret field the variable holds the secret itself
    config = load_config(path, spec, environ={"THING_PORT": "8081", "THING_PASSWORD": "pw"})
    assert config.settings.port == 8081
    assert config.settings.password.get_secret_value() == "pw"


class NestedAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: EnvSecret | None = None


class OptionalSecretSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: EnvSecret | None = None
    auth: NestedAuth | None = None


def test_override_of_optional_and_nested_secret_carries_the_secret(tmp_path: Path) -> None:
    # A value that looks like a variable name: read as a name, the "not set" error would print it.
    path = write(tmp_path, 'danube_service_url = "u"\nconnector_name = "c"\n[thing]\n')
    spec = ConfigSpec(
        "thing",
        OptionalSecretSection,
        env_overrides={"THING_PASSWORD": "password", "THING_API_KEY": "auth.api_key"},
    )
    env = {"THING_PASSWORD": "hunter2", "THING_API_KEY": "letmein"}
    config = load_config(path, spec, environ=env)
    assert config.settings.password.get_secret_value() == "hunter2"
    assert config.settings.auth.api_key.get_secret_value() == "letmein"
    assert "hunter2" not in repr(config.settings) and "letmein" not in repr(config.settings)


def test_secret_resolution_reads_the_named_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THING_SECRET", "s3cret")
    path = write(
        tmp_path, 'danube_service_url = "u"\nconnector_name = "c"\n[thing]\npassword = "THING_SECRET"\n'
    )
    config = load_config(path, ConfigSpec("thing", SecretSection), environ={})
    assert config.settings.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config.settings)


# -- every error: exit code 2 and one line naming file and key (real process) --------------------------

CASES = {
    "missing_file": (None, "configuration file not found", None),
    "bad_toml": ('danube_service_url = "u"\nconnector_name = \n', "invalid TOML", None),
    "unknown_key": ('danube_service_url = "u"\nconnector_name = "c"\nbogus = 1\n', "unknown key", "bogus"),
    "unknown_nested_key": (
        'danube_service_url = "u"\nconnector_name = "c"\n[retry]\nmax_retrys = 1\n',
        "unknown key",
        "retry.max_retrys",
    ),
    # A quoted TOML key may hold a newline or an escape: written escaped, the report stays one line
    # (found by tests/hostile/test_config_fuzz.py: a generated key "\U0004089b\n\U000ceed6\x1b...").
    "unknown_key_with_newline": (
        'danube_service_url = "u"\nconnector_name = "c"\n"bo\\ngus\\u001b" = 1\n',
        "unknown key",
        "bo\\ngus\\x1b",
    ),
    "unknown_nested_key_with_line_separator": (
        'danube_service_url = "u"\nconnector_name = "c"\n[retry]\n"a\\u2028b" = 1\n',
        "unknown key",
        "retry.a\\u2028b",
    ),
    "wrong_type": (
        'danube_service_url = "u"\nconnector_name = "c"\n[processing]\nbatch_size = "many"\n',
        "valid integer",
        "processing.batch_size",
    ),
    "missing_required": ('connector_name = "c"\n', "required field is missing", "danube_service_url"),
    "unset_secret": (
        'danube_service_url = "u"\nconnector_name = "c"\n[danube]\ntoken_env = "NO_SUCH_TOKEN_VAR_X"\n',
        "environment variable NO_SUCH_TOKEN_VAR_X is not set",
        "danube.token_env",
    ),
    "bad_schema_strategy": (
        'danube_service_url = "u"\nconnector_name = "c"\n[[schemas]]\ntopic = "/a/b"\nsubject = "s"\n'
        'schema_type = "string"\nversion_strategy = "oldest"\n',
        "",
        "schemas[0].version_strategy",
    ),
}


@pytest.mark.integration  # CLI processes
@pytest.mark.parametrize("case", sorted(CASES))
def test_config_errors_exit_2_with_one_line(tmp_path: Path, case: str) -> None:
    text, message, key = CASES[case]
    path = tmp_path / "connector.toml"
    if text is not None:
        path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-c", "from danube_connect_core.cli import main; main()", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0]
    assert message in lines[0]
    if key is not None:
        assert f": {key}: " in lines[0]


@pytest.mark.integration  # a CLI process
def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, 'danube_service_url = "u"\nconnector_name = "c"\n[counter]\ntopic = 5\n')
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from danube_connect_core.cli import main; main()",
            "run",
            "counter",
            "--config",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert f"{path}: counter.topic: " in proc.stderr


@pytest.mark.integration  # a CLI process
def test_validate_ok_finds_connector_by_section(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'danube_service_url = "u"\nconnector_name = "c"\n[counter]\ntopic = "/default/n"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-c", "from danube_connect_core.cli import main; main()", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "counter" in proc.stdout
