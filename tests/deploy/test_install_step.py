"""Each image's install step, run outside Docker: the same deploy/docker/install-member.sh with the same
member into a fresh venv must give a working console script and nothing from the dev group."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .deploy_support import ROOT, images, uv_binary

pytestmark = pytest.mark.integration  # installs and runs every console script

PRESENT = [i for i in images() if i.dockerfile.exists()]
# Dev-only or test-only distributions that must never reach an image.
FORBIDDEN = ("chdb", "pytest", "ruff", "mypy", "hypothesis", "grpcio_tools", "danube_client")


def _install_args(dockerfile: Path) -> tuple[str, str]:
    text = dockerfile.read_text()
    match = re.search(r"sh (deploy/docker/install-member\.sh) (\S+) (\S+)\s*$", text, re.M)
    assert match, f"{dockerfile}: no `sh deploy/docker/install-member.sh <member> <venv>` step"
    return match.group(1), match.group(2)


def _entrypoint(dockerfile: Path) -> str:
    match = re.search(r'^ENTRYPOINT\s+\["([^"]+)"', dockerfile.read_text(), re.M)
    assert match
    return match.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("image", PRESENT, ids=lambda i: i.name)
def test_install_step_outside_docker(image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script, member = _install_args(image.dockerfile)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    env["PATH"] = f"{Path(uv_binary()).parent}{os.pathsep}{env.get('PATH', '')}"
    # The interpreter the image would use is the base image's; here, the one running the tests.
    env["UV_PYTHON"] = os.path.realpath(os.sys.executable)  # type: ignore[attr-defined]
    result = subprocess.run(
        ["sh", str(ROOT / script), member, str(venv)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]

    console = venv / "bin" / _entrypoint(image.dockerfile)
    assert console.is_file(), f"{console.name} not installed by {member}"
    helped = subprocess.run([str(console), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr[-4000:]

    site = next((venv / "lib").glob("python3*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.iterdir()}
    leaked = sorted(set(FORBIDDEN) & installed)
    assert not leaked, f"dev/test packages in the {image.name} image: {leaked}"
