"""Every Dockerfile passes hadolint; connector Dockerfiles are exactly the rendered template; each
image's Dockerfile keeps the conventions (uv install step from the lock, non-root, OCI labels, health
check, ports)."""

from __future__ import annotations

import re
import runpy
import subprocess
from pathlib import Path

import pytest

from .deploy_support import DEPLOY, ROOT, dockerfiles, hadolint, images, rel

FILES = dockerfiles()
PRESENT = [i for i in images() if i.dockerfile.exists()]
RENDER = runpy.run_path(str(DEPLOY / "docker" / "render_dockerfiles.py"))


def _hadolint(path: Path) -> None:
    result = subprocess.run([hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"


def test_dockerfiles_are_discovered() -> None:
    assert ROOT / "packages" / "embedded-broker" / "Dockerfile" in FILES


@pytest.mark.parametrize("path", FILES, ids=[rel(p) for p in FILES])
def test_hadolint(path: Path) -> None:
    _hadolint(path)


@pytest.mark.parametrize("image", [i for i in RENDER["load_images"]() if i.templated], ids=lambda i: i.name)
def test_template_renders_lint_clean(image: object, tmp_path: Path) -> None:
    """The template is linted for every connector, including those whose directory is not there yet."""
    target = tmp_path / "Dockerfile"
    target.write_text(RENDER["render"](image))
    _hadolint(target)


@pytest.mark.parametrize("image", RENDER["member_images"](), ids=lambda i: i.name)
def test_connector_dockerfile_follows_the_template(image: object) -> None:
    """Every connector has a Dockerfile, and it is the rendered template, byte for byte
    (fix: python deploy/docker/render_dockerfiles.py)."""
    state = RENDER["state"](image)
    path = rel(getattr(image, "dockerfile"))  # noqa: B009
    assert state != "missing", f"{path} missing: run python deploy/docker/render_dockerfiles.py"
    assert state == "ok", f"{path} differs from deploy/docker/Dockerfile.connector.template"


def test_every_connector_directory_is_listed() -> None:
    listed = {i.dir for i in images()}
    present = {rel(p.parent) for p in (ROOT / "connectors").glob("*/pyproject.toml")}
    assert present <= listed, f"add to deploy/docker/images.toml: {sorted(present - listed)}"


@pytest.mark.parametrize("image", PRESENT, ids=lambda i: i.name)
def test_image_conventions(image) -> None:  # type: ignore[no-untyped-def]
    text = image.dockerfile.read_text()
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    assert len(stages) >= 3, "multi-stage: uv, build, runtime"
    assert re.search(rf"install-member\.sh {re.escape(image.name)} /opt/venv\s*$", text, re.M)
    assert "pip install" not in text, "install only through uv.lock (deploy/docker/install-member.sh)"
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the runtime stage runs as non-root"
    assert re.search(r"^HEALTHCHECK\s", text, re.M)
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M) for p in line.split()}
    assert exposed == set(image.ports)
    for label in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{label}=" in text
    entrypoint = re.findall(r'^ENTRYPOINT\s+\["([^"]+)"', text, re.M)
    assert entrypoint == [image.name], "the entry point is the member's console script"
    if image.templated:
        assert "CONNECTOR_CONFIG_PATH=/etc/danube-connector/connector.toml" in text


@pytest.mark.parametrize("image", PRESENT, ids=lambda i: i.name)
def test_image_builds_from_local_bases(image) -> None:  # type: ignore[no-untyped-def]
    """Production defaults are the official images; a machine without a registry passes its own bases as
    build arguments (scripts/images.sh), so nothing may tie the file to one base or pull anything else."""
    text = image.dockerfile.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", text, re.M)
    assert re.search(r"^ARG UV_IMAGE=ghcr\.io/astral-sh/uv:\S+$", text, re.M)
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), "a syntax line pulls a frontend"
    assert "UV_PYTHON=" not in text, "the interpreter comes from the base's PATH, not a hard-wired path"
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert set(froms) <= {"${UV_IMAGE}", "${PYTHON_IMAGE}"}, f"stages from build args only: {froms}"
    # The package index CA: a secret mounted for the install step only, never copied into a layer.
    assert "--mount=type=secret,id=ca-bundle" in text
    assert not re.search(r"^(COPY|ADD)\s.*(\.crt|\.pem|ca-bundle)", text, re.M | re.I)
