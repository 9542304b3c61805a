"""Test helpers: run the broker as a real subprocess (for SIGTERM/SIGKILL/restart tests)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from danube_embedded_broker.cli import READY_PREFIX


def _command() -> list[str]:
    script = Path(sys.executable).parent / "danube-embedded-broker"
    if script.exists():
        return [str(script)]
    found = shutil.which("danube-embedded-broker")
    return [found] if found else [sys.executable, "-m", "danube_embedded_broker"]


class BrokerProcess:
    """The ``danube-embedded-broker`` console script as a subprocess on ``127.0.0.1``.

    ``start()`` blocks until the ready line; a later ``start()`` after ``stop()``/``kill()`` reuses the
    same port and data dir, so clients can reconnect to the same URL. stderr goes to ``log_path``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.args = tuple(args)
        self.env = dict(env) if env is not None else None
        self.url = f"http://127.0.0.1:{port}" if port else ""
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-broker.log"
        self._proc: subprocess.Popen[str] | None = None
        self._starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> str:
        """Start and wait for the ready line; returns the URL.

        Raises ``RuntimeError`` (with the log tail) when the process exits or is not ready in time.
        """
        if self.running:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [*_command(), "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        cmd += self.args
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self._starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"--- start #{self._starts}: {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, env=env
            )
        self._proc = proc
        ready = threading.Event()
        found: list[str] = []

        def read_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(READY_PREFIX) and not found:
                    found.append(line[len(READY_PREFIX) :].strip())
                    ready.set()
            ready.set()  # EOF: the process ended

        threading.Thread(target=read_stdout, name="broker-stdout", daemon=True).start()
        if not ready.wait(timeout) or not found:
            self.kill()
            raise RuntimeError(f"broker did not become ready within {timeout}s:\n{self.log_tail()}")
        self.url = found[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self.url

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL and ``-9`` if it does not exit in time)."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL (no clean shutdown) and wait for the process to be gone."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> BrokerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running:
            self.stop()
