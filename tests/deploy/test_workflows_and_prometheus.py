"""Workflow files parse and the release matrix lists exactly the images of deploy/docker/images.toml;
the Prometheus configuration parses and scrapes the broker and every connector service of the stack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from .deploy_support import DEPLOY, ROOT, compose_binary, images, rel

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=[rel(p) for p in WORKFLOWS])
def test_workflow_parses(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict) and doc.get("jobs"), f"{rel(path)}: no jobs"
    assert True in doc or "on" in doc, f"{rel(path)}: no trigger"  # YAML 1.1 reads `on` as True
    for name, job in doc["jobs"].items():
        assert "runs-on" in job or "uses" in job, f"{rel(path)}: job {name} has no runner"
        for step in job.get("steps", []):
            assert ("run" in step) != ("uses" in step), f"{rel(path)}: job {name}: a step needs run or uses"


def test_release_matrix_matches_images() -> None:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    trigger = doc.get("on", doc.get(True))
    assert trigger["push"]["tags"] == ["v*"]
    job = doc["jobs"]["image"]
    matrix = {(i["name"], i["dockerfile"]) for i in job["strategy"]["matrix"]["image"]}
    assert matrix == {(i.name, f"{i.dir}/Dockerfile") for i in images()}
    build = next(s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    meta = next(s for s in job["steps"] if s.get("uses", "").startswith("docker/metadata-action"))
    assert "ghcr.io/${{ github.repository_owner }}/${{ matrix.image.name }}" in meta["with"]["images"]
    assert "type=semver,pattern={{version}}" in meta["with"]["tags"]


def test_prometheus_scrapes_broker_and_every_connector_service() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["danube-broker"]["static_configs"][0]["targets"] == ["danube-broker:9040"]
    dns = jobs["danube-connectors"]["dns_sd_configs"][0]
    assert dns["port"] == 9090
    result = subprocess.run(
        [compose_binary(), "-f", "docker-compose.yml", "config", "--format", "json"],
        cwd=DEPLOY / "compose", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    connectors = {n for n, s in services.items() if "/danube-source-" in s.get("image", "")
                  or "/danube-sink-" in s.get("image", "")}  # fmt: skip
    assert connectors and connectors <= set(dns["names"])
