"""Every image of deploy/docker/images.toml, as built by scripts/images.sh: it runs as a non-root user,
`--help` exits 0, a bad configuration exits 2 with the reason, and with a valid configuration its own
HEALTHCHECK turns healthy and /ready answers on the published metrics port.

The valid runs share one user-defined network: the embedded-broker image (alias `broker`), a mosquitto
container (`mqtt`, for the MQTT source), PostgreSQL 15 with wal2json (`postgres`, for the CDC source; both
from Debian packages, deploy/docker/local/Dockerfile) and a plain HTTP server (`receiver`, for the HTTP
sink). The SurrealDB, Delta Lake and Qdrant sinks use their embedded stores inside the container. All of
those must become ready (/ready 200). ClickHouse has no server image here: that sink runs with a retry
budget longer than the test and must stay alive and healthy (degraded) while /ready says 503. Ports are
published on 127.0.0.1 only and reached there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .compose_support import ROOT, docker, http, image_name, wait_for

pytestmark = pytest.mark.usefixtures("engine")

CONFIGS = Path(__file__).resolve().parent / "image_configs"
LOCAL_PYTHON = os.environ.get("DANUBE_LOCAL_PYTHON_IMAGE", "danube-local/python:latest")
LOCAL_MOSQUITTO = os.environ.get("DANUBE_LOCAL_MOSQUITTO_IMAGE", "danube-local/mosquitto:latest")
LOCAL_POSTGRES = os.environ.get("DANUBE_LOCAL_POSTGRES_IMAGE", "danube-local/postgres:latest")


@dataclass(frozen=True)
class Image:
    name: str
    dir: str
    ports: tuple[int, ...]

    @property
    def ref(self) -> str:
        return image_name(self.name)

    @property
    def short(self) -> str:
        return Path(self.dir).name

    @property
    def is_broker(self) -> bool:
        return self.name == "danube-embedded-broker"

    @property
    def health_port(self) -> int:
        return 9040 if self.is_broker else 9090


IMAGES = [
    Image(i["name"], i["dir"], tuple(i["ports"]))
    for i in tomllib.loads((ROOT / "deploy" / "docker" / "images.toml").read_text())["image"]
]
# No ClickHouse server image on this machine: ready must say 503, the process must stay up and healthy.
TARGET_ABSENT = {"danube-sink-clickhouse"}
# Sinks become ready once subscribed, and a topic exists once something produced to it: a one-shot
# container of the broker image (it carries the client) creates the sinks' topics.
CREATE_TOPICS = """
import asyncio, sys, time
from danube_connect_core.client import DanubeClient

async def main(topics):
    deadline = time.monotonic() + 180
    while True:
        try:
            async with DanubeClient("http://broker:6650") as client:
                for topic in topics:
                    await client.create_producer(topic, "image-test-topics")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)

asyncio.run(main(sys.argv[1:]))
"""
BROKER_ARGS = ["--host", "0.0.0.0", "--port", "6650", "--metrics-port", "9040",
               "--data-dir", "/var/lib/danube/data", "--advertised-url", "http://broker:6650"]  # fmt: skip


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([docker(), *args], capture_output=True, text=True, timeout=timeout)


def test_every_image_is_covered() -> None:
    assert len(IMAGES) == 9
    assert {i.short for i in IMAGES if not i.is_broker} == {p.stem for p in CONFIGS.glob("*.toml")}


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_runs_as_non_root(image: Image) -> None:
    user = run("image", "inspect", "--format", "{{.Config.User}}", image.ref)
    assert user.returncode == 0, f"{image.ref} is not built (bash scripts/images.sh): {user.stderr}"
    assert user.stdout.strip().split(":")[0] not in {"", "0", "root"}, f"USER is {user.stdout.strip()!r}"
    uid = run("run", "--rm", "--network", "none", "--entrypoint", "id", image.ref, "-u")
    assert uid.returncode == 0, uid.stderr
    assert uid.stdout.strip() != "0"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_build_ca_left_no_trace(image: Image) -> None:
    """The package index CA was a BuildKit secret of one RUN: no file, no environment, no history entry."""
    env = run("image", "inspect", "--format", "{{json .Config.Env}}", image.ref).stdout
    assert "SSL_CERT_FILE" not in env and "ca-bundle" not in env
    history = run("history", "--no-trunc", "--format", "{{.CreatedBy}}", image.ref).stdout
    assert "ca-certificates.crt" not in history
    probe = run("run", "--rm", "--network", "none", "--entrypoint", "sh", image.ref, "-c",
                "ls -A /run/secrets 2>/dev/null | wc -l")  # fmt: skip
    assert probe.returncode == 0 and probe.stdout.strip() == "0", probe.stdout + probe.stderr


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_help_exits_0(image: Image) -> None:
    result = run("run", "--rm", "--network", "none", image.ref, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_bad_config_exits_2_with_the_reason(image: Image, shared_dir: Path) -> None:
    if image.is_broker:
        # The broker takes its configuration as arguments.
        result = run("run", "--rm", "--network", "none", image.ref, "--fsync", "sometimes")
        assert result.returncode == 2, result.stderr
        assert "argument --fsync: invalid choice: 'sometimes'" in result.stderr
        return
    config = _config_dir(shared_dir / f"bad-{image.short}", image)
    bad = (config / "connector.toml").read_text() + '\n[processing]\nmetrics_port = "not-a-port"\n'
    (config / "connector.toml").write_text(bad)
    result = run("run", "--rm", "--network", "none", "-v", f"{config}:/etc/danube-connector:ro", image.ref)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "config error:" in result.stderr
    assert "processing.metrics_port" in result.stderr


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    """A directory the containers' user (uid 10001) can read. Not under pytest's base temp dir: that one is
    private (0700) and another pytest session on the machine may reset its mode at any time."""
    path = Path(tempfile.mkdtemp(prefix="danube-image-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def running(shared_dir: Path) -> Iterator[dict[str, str]]:
    """Every image started with a valid configuration at once (they become healthy in parallel);
    container name per image name. Everything carries a run label and is removed on every exit path."""
    run_id = f"dct-{uuid.uuid4().hex[:8]}"
    label = f"danube.test.run={run_id}"
    network = run_id
    base = shared_dir / "valid"
    names: dict[str, str] = {}
    try:
        assert run("network", "create", "--label", label, network).returncode == 0
        common = ["run", "-d", "--label", label, "--network", network]
        mosquitto_conf = base / "mosquitto"
        mosquitto_conf.mkdir(parents=True)
        (mosquitto_conf / "mosquitto.conf").write_text("listener 1883 0.0.0.0\nallow_anonymous true\n")
        _readable(mosquitto_conf)
        helpers = [
            [*common, "--name", f"{run_id}-svc-mqtt", "--network-alias", "mqtt",
             "-v", f"{mosquitto_conf}:/mosquitto/config:ro", LOCAL_MOSQUITTO,
             "mosquitto", "-c", "/mosquitto/config/mosquitto.conf"],
            [*common, "--name", f"{run_id}-svc-postgres", "--network-alias", "postgres", LOCAL_POSTGRES],
            [*common, "--name", f"{run_id}-svc-receiver", "--network-alias", "receiver", "--user", "65534",
             LOCAL_PYTHON, "python3", "-m", "http.server", "8000"],
        ]  # fmt: skip
        for args in helpers:
            started = run(*args)
            assert started.returncode == 0, started.stderr
        # The CDC source refuses to start without its database: create it before the connectors start.
        postgres = f"{run_id}-svc-postgres"
        wait_for("PostgreSQL accepting connections",
                 lambda: run("exec", postgres, "pg_isready", "-q").returncode == 0, timeout=120)  # fmt: skip
        for sql in ("CREATE DATABASE shop", "CREATE TABLE public.orders (id int PRIMARY KEY, total int)"):
            created = run("exec", postgres, "psql", "-v", "ON_ERROR_STOP=1", "-d",
                          "shop" if "TABLE" in sql else "postgres", "-c", sql)  # fmt: skip
            assert created.returncode == 0, created.stderr
        for image in IMAGES:
            name = f"{run_id}-{image.short}"
            args = [*common, "--name", name, "-p", f"127.0.0.1::{image.health_port}"]
            if image.is_broker:
                args += ["--network-alias", "broker", image.ref, *BROKER_ARGS]
            else:
                config = _config_dir(base / image.short, image)
                args += ["-v", f"{config}:/etc/danube-connector:ro", image.ref]
            started = run(*args)
            assert started.returncode == 0, started.stderr
            names[image.name] = name
        broker = next(i for i in IMAGES if i.is_broker)
        topics = run("run", "--rm", "--network", network, "--entrypoint", "python", broker.ref,
                     "-c", CREATE_TOPICS, *_sink_topics(), timeout=240)  # fmt: skip
        assert topics.returncode == 0, topics.stderr[-3000:]
        yield names
    finally:
        ids = run("ps", "-aq", "--filter", f"label={label}").stdout.split()
        if ids:
            run("rm", "-f", "-v", *ids)
        run("network", "rm", network)


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_valid_config_turns_healthy_and_ready_answers(image: Image, running: dict[str, str]) -> None:
    name = running[image.name]

    def state() -> str | None:
        out = run("inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", name).stdout.split()
        assert out and out[0] == "running", f"{name} is not running: {out}\n{_logs(name)}"
        return out[1] if out[1] == "healthy" else None

    # HEALTHCHECK: every 10 s after a 15 s start period; generous for a loaded 2-core machine.
    wait_for(f"{image.name} HEALTHCHECK healthy", state, timeout=240, interval=2)
    port = _host_port(name, image.health_port)
    base = f"http://127.0.0.1:{port}"
    if image.is_broker:
        status, body = http("GET", f"{base}/metrics")
        assert status == 200 and b"# TYPE" in body
        return
    if image.name in TARGET_ABSENT:
        status, body = http("GET", f"{base}/ready")
        assert status == 503, f"/ready -> {status} {body[:300]!r}"
        status, body = http("GET", f"{base}/health")
        assert status == 200, f"/health -> {status} {body[:300]!r}"
        return
    wait_for(f"{image.name} /ready 200", lambda: http("GET", f"{base}/ready")[0] == 200, timeout=180)


def _config_dir(path: Path, image: Image) -> Path:
    """A directory with the image's valid test configuration as connector.toml, readable by uid 10001."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "connector.toml").write_text((CONFIGS / f"{image.short}.toml").read_text())
    _readable(path)
    return path


def _sink_topics() -> list[str]:
    """Every `topic = ...` of a mapping in the test configurations (the sinks' topics)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("topic"), str):
                found.append(node["topic"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(CONFIGS.glob("*.toml")):
        walk(tomllib.loads(path.read_text()))
    return found


def _readable(path: Path) -> None:
    path.chmod(0o755)
    for child in path.iterdir():
        child.chmod(0o644)


def _host_port(container: str, port: int) -> int:
    out = run("port", container, f"{port}/tcp").stdout.split()
    assert out, f"{container} publishes no port for {port}"
    host, _, published = out[0].rpartition(":")
    assert host == "127.0.0.1", f"{container}:{port} is published on {host}, not on loopback only"
    return int(published)


def _logs(container: str) -> str:
    result = run("logs", "--tail", "40", container)
    return (result.stdout + result.stderr)[-4000:]
