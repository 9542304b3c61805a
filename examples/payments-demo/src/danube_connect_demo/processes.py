"""The demo's child processes: each in its own process group, logs to a file, ports read from its logs.

Every child gets its own session (so a Ctrl-C in the terminal reaches only the demo, which then stops
the children in order: source, sink, broker) and, on Linux, a parent-death signal (SIGTERM) so that even
a demo killed with SIGKILL leaves no orphans behind. Stopping signals the whole process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["MissingCommand", "ServiceProcess", "find_command"]

_PR_SET_PDEATHSIG = 1


class MissingCommand(RuntimeError):
    """A console script the demo needs is not installed."""


def find_command(script: str, distribution: str) -> list[str]:
    """The console script next to this interpreter, else on PATH; MissingCommand names the package."""
    local = Path(sys.executable).parent / script
    if local.exists():
        return [str(local)]
    found = shutil.which(script)
    if found:
        return [found]
    raise MissingCommand(
        f"`{script}` is not installed: install the {distribution} package "
        f"(in this repository: `uv sync --all-packages`, or run `bash scripts/demo.sh`)"
    )


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class ServiceProcess:
    """One child process. stderr (and stdout) lines go to ``log_path``; JSON log lines carrying one of
    ``port_keys`` (e.g. ``metrics_port``) record that port, readable with :meth:`wait_port`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        port_keys: Sequence[str] = (),
        on_stdout: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env or {})
        self.port_keys = tuple(port_keys)
        self.on_stdout = on_stdout
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._changed = threading.Condition()
        self._log_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_child_setup,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True).start()
        return self

    def _pump(self, stream: object, is_stdout: bool) -> None:
        with open(self.log_path, "ab") as log:
            for raw in stream:  # type: ignore[attr-defined]
                with self._log_lock:
                    log.write(raw)
                    log.flush()
                line = raw.decode("utf-8", "replace").strip()
                if is_stdout and self.on_stdout is not None:
                    self.on_stdout(line)
                if self.port_keys and line.startswith("{"):
                    self._read_ports(line)
        with self._changed:
            self._changed.notify_all()

    def _read_ports(self, line: str) -> None:
        try:
            data = json.loads(line)
        except ValueError:
            return
        found = {k: int(data[k]) for k in self.port_keys if isinstance(data.get(k), int)}
        if found:
            with self._changed:
                for key, value in found.items():
                    self.ports.setdefault(key, value)
                self._changed.notify_all()

    def wait_port(self, key: str, timeout: float) -> int:
        """The port logged under ``key``; RuntimeError when the process exits or the time is up first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while key not in self.ports:
                if not self.running:
                    raise RuntimeError(f"{self.name} exited with code {self.returncode()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.name} did not report its {key} within {timeout:.0f}s")
                self._changed.wait(min(left, 0.2))
            return self.ports[key]

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def stop(self, timeout: float) -> int | None:
        """SIGTERM to the process group, wait ``timeout``, then SIGKILL; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait()
        # Anything the child left in its group goes too (a connector has no children of its own).
        self._signal_group(signal.SIGKILL)
        return proc.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
