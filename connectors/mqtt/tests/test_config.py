"""Configuration: the seed example and the full example load; bad settings are errors naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from danube_connect_core.config_loader import load_config
from danube_connect_core.errors import ConfigError
from danube_source_mqtt.connector import MqttSource
from danube_source_mqtt.settings import MqttSettings

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def load(path: Path, environ: dict[str, str] | None = None) -> MqttSettings:
    config = load_config(path, MqttSource.config_spec(), environ=environ or {})
    return config.settings_as(MqttSettings)


def test_the_seed_example_loads_as_written() -> None:
    s = load(CONFIG_DIR / "seed-example.toml")
    assert (s.broker_host, s.broker_port) == ("mosquitto", 1883)
    (m,) = s.topic_mappings
    assert (m.mqtt_topic, m.danube_topic, m.partitions, m.qos) == ("sensors/#", "/iot/sensors", 8, 1)
    assert s.clean_session is False and s.client_id is None  # the client id defaults to connector_name


def test_the_full_example_loads() -> None:
    s = load(CONFIG_DIR / "mqtt-source.toml")
    assert [m.qos for m in s.topic_mappings] == [1, 2, 0]
    assert s.topic_mappings[1].topic_filter.filter == "devices/#"
    assert s.topic_mappings[1].topic_filter.share_group == "bridge"


def test_environment_overrides_and_the_password_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "MQTT_BROKER_HOST": "broker.example",
        "MQTT_BROKER_PORT": "8883",
        "MQTT_USERNAME": "bridge",
        "MQTT_PASSWORD": "s3cret-value",
    }
    s = load(CONFIG_DIR / "seed-example.toml", env)
    assert (s.broker_host, s.broker_port, s.username) == ("broker.example", 8883, "bridge")
    assert s.password_value == "s3cret-value"
    assert "s3cret-value" not in repr(s)


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('mqtt_topic = "a/#/b"\ndanube_topic = "/iot/x"', "mqtt.topic_mappings[0].mqtt_topic"),
        ('mqtt_topic = "a/b+"\ndanube_topic = "/iot/x"', "mqtt.topic_mappings[0].mqtt_topic"),
        ('mqtt_topic = "$share/g"\ndanube_topic = "/iot/x"', "mqtt.topic_mappings[0].mqtt_topic"),
        ('mqtt_topic = "a"\ndanube_topic = "iot/x"', "mqtt.topic_mappings[0].danube_topic"),
        ('mqtt_topic = "a"\ndanube_topic = "/iot/x"\nqos = 3', "mqtt.topic_mappings[0].qos"),
        ('mqtt_topic = "a"\ndanube_topic = "/iot/x"\nbogus = 1', "mqtt.topic_mappings[0].bogus"),
    ],
)
def test_bad_mappings_are_config_errors_naming_the_key(tmp_path: Path, snippet: str, key: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'danube_service_url = "u"\nconnector_name = "c"\n[[mqtt.topic_mappings]]\n{snippet}\n')
    with pytest.raises(ConfigError) as err:
        load(path)
    assert err.value.key == key, str(err.value)


@pytest.mark.integration  # console script processes
def test_check_command_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-c",
            "from danube_source_mqtt.connector import main; main()",
            "--check",
            "--config",
            str(CONFIG_DIR / "seed-example.toml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('danube_service_url = "u"\nconnector_name = "c"\n[mqtt]\nbroker_port = "x"\n')
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "from danube_source_mqtt.connector import main; main()",
            "--check",
            "--config",
            str(bad),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2
    assert "mqtt.broker_port" in res.stderr
