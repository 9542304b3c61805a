"""TLS against a real mosquitto TLS listener with certificates generated here (``cryptography``): the
connector as a real process. A certificate problem is named plainly and ends the process with exit 2
(a configuration problem: restarting cannot fix it); the right certificates connect (mTLS included)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.testing import ConnectorProcess
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_source_mqtt.testing import Mosquitto, wait_ready


def write_config(path: Path, url: str, port: int, tls: dict[str, Path]) -> Path:
    return write_connector_toml(
        path,
        url,
        "mqtt-tls",
        mqtt={
            "broker_host": "127.0.0.1",
            "broker_port": port,
            "connect_timeout_s": 20.0,
            "tls": tls,
            "topic_mappings": [{"mqtt_topic": "sensors/#", "danube_topic": "/default/sensors"}],
        },
    )


def tls_broker(binary: str, workdir: Path, ca: Any, server: Any, mtls: bool) -> Mosquitto:
    conf = f"cafile {ca.file}\ncertfile {server.cert}\nkeyfile {server.key}\n"
    if os.geteuid() == 0:
        # mosquitto started as root drops to the "mosquitto" user before reading the certificates,
        # which cannot enter the test's private temporary directory.
        conf += "user root\n"
    if mtls:
        conf += "require_certificate true\n"
    return Mosquitto(binary, workdir, extra_conf=conf, persistence=False).start()


CASES = {
    # case: (server certificate, broker requires a client cert, client settings, expected message part)
    "wrong_ca": ("good", False, "other_ca", "the broker's certificate is not signed by ca_file"),
    "expired": ("expired", False, "ca", "the broker's certificate (or one of its chain) has expired"),
    "hostname": ("wrong_host", False, "ca", "hostname mismatch"),
    "no_client_cert": ("good", True, "ca", "the broker requires a client certificate"),
    "client_cert_from_another_ca": ("good", True, "foreign_client", "refused the client certificate"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_certificate_problems_are_named_and_exit_2(
    case: str, mosquitto_binary_path: str, broker_factory: Any, tmp_path: Path, pki: Any
) -> None:
    server_kind, mtls, client_kind, expected = CASES[case]
    ca = pki("good")
    other = pki("other")
    server = {
        "good": lambda: ca.issue("server"),
        "expired": lambda: ca.issue("server", expired=True),
        "wrong_host": lambda: ca.issue("server", hosts=("mqtt.example.org",)),
    }[server_kind]()
    tls: dict[str, Path] = {"ca_file": other.file if client_kind == "other_ca" else ca.file}
    if client_kind == "foreign_client":
        foreign = other.issue("client", client=True)
        tls |= {"cert_file": foreign.cert, "key_file": foreign.key}
    mosq = tls_broker(mosquitto_binary_path, tmp_path / "mosq", ca, server, mtls)
    broker = await broker_factory()
    config = write_config(tmp_path / "mqtt.toml", broker.url, mosq.port, tls)
    proc = ConnectorProcess("mqtt", config).start()
    try:
        code = await asyncio.to_thread(proc.wait, 60)
    finally:
        proc.kill()
        mosq.stop()
    log = "\n".join(proc.lines)
    assert code == 2, log
    assert "config error:" in log and "TLS: " in log and expected in log, log
    if case == "wrong_ca":
        assert str(other.file) in log


async def test_mutual_tls_with_the_right_certificates_connects(
    mosquitto_binary_path: str, broker_factory: Any, tmp_path: Path, pki: Any
) -> None:
    ca = pki("good")
    mosq = tls_broker(mosquitto_binary_path, tmp_path / "mosq", ca, ca.issue("server"), mtls=True)
    client = ca.issue("client", client=True)
    broker = await broker_factory()
    config = write_config(
        tmp_path / "mqtt.toml",
        broker.url,
        mosq.port,
        {"ca_file": ca.file, "cert_file": client.cert, "key_file": client.key},
    )
    proc = ConnectorProcess("mqtt", config).start()
    try:
        port = await asyncio.to_thread(proc.metrics_port)
        await wait_ready(port)
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, proc.log_tail()
    finally:
        proc.kill()
        mosq.stop()
