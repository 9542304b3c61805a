"""`danube-connect-demo` (examples/payments-demo, what `bash scripts/demo.sh` runs) exactly as a user runs
it: real processes, the printed table, clean stops."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from danube_connect_demo.payments import PAYMENT_SCHEMA
from danube_connect_demo.processes import MissingCommand, find_command

ROOT = Path(__file__).resolve().parents[2]
DEMO = [str(Path(sys.executable).parent / "danube-connect-demo")]
ROW = re.compile(r"^\s+(payment\.\w+)\s+(\d+)$")


def parse_table(output: str) -> tuple[dict[str, int], int]:
    groups = {m.group(1): int(m.group(2)) for line in output.splitlines() if (m := ROW.match(line))}
    total = re.search(r"^\s+all events\s+(\d+)$", output, re.MULTILINE)
    assert total is not None, output
    return groups, int(total.group(1))


def processes_using(path: Path) -> list[int]:
    """Pids whose command line mentions ``path`` (the demo's children all get it in their arguments)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if str(path) in cmdline and state != "Z" and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def wait_gone(path: Path, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while (left := processes_using(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"orphan processes: {left}"


class Demo:
    """The demo command as a subprocess, its stdout collected line by line."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [*DEMO, "--data-dir", str(data_dir), "--webhook-port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, within: float) -> int:
        """The exit code, once :attr:`lines` holds everything the demo printed (its reader thread may
        still be reading the last lines, the table among them, when the process has exited)."""
        code = self.proc.wait(within)
        self._reader.join(10)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, f"demo exited {self.proc.returncode}:\n{self.output}"
            assert time.monotonic() < deadline, self.output
            time.sleep(0.05)


def test_demo_once_prints_a_table_of_100_events_and_exits_0(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    demo = Demo(data, "--once")
    assert demo.wait(180) == 0, demo.output
    groups, total = parse_table(demo.output)
    assert total == 100 and sum(groups.values()) == 100, demo.output
    assert set(groups) <= {"payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled"}
    assert "SELECT event, count() AS total FROM stripe_payments GROUP BY event;" in demo.output
    assert "x-api-key: demo-api-key-e2e-12345" in demo.output
    assert "100/100" in demo.output  # the progress bar finished
    wait_gone(data, within=5)
    # The configs it wrote are the example's, and the same store serves a second run (--keep-data).
    assert 'url = "surrealkv://' in (data / "config" / "surrealdb-sink-connector.toml").read_text()
    again = Demo(data, "--once", "--keep-data", "--events", "10")
    assert again.wait(180) == 0, again.output
    assert parse_table(again.output)[1] == 110
    assert "100 of them from earlier runs" in again.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_keeps_running_until_a_signal_then_stops_everything(tmp_path: Path, sig: signal.Signals) -> None:
    data = tmp_path / "demo-data"
    demo = Demo(data, "--events", "20")
    try:
        demo.wait_for("Ctrl-C stops it")
        assert len(set(processes_using(data)) - {demo.proc.pid}) == 3  # broker, webhook, sink
        assert parse_table(demo.output)[1] == 20
        demo.proc.send_signal(sig)
        assert demo.wait(90) == 0, demo.output
        assert "Stopped." in demo.output
        wait_gone(data, within=5)
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()


def test_a_killed_demo_leaves_no_orphans(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    demo = Demo(data, "--events", "5")
    try:
        demo.wait_for("Ctrl-C stops it")
        assert len(set(processes_using(data)) - {demo.proc.pid}) == 3
        demo.proc.kill()  # SIGKILL: the demo cannot clean up; the children get SIGTERM from the kernel
        demo.proc.wait(10)
        wait_gone(data, within=60)
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
        for pid in processes_using(data):  # only processes this test started (their args hold tmp_path)
            os.kill(pid, signal.SIGKILL)


def test_a_directory_the_demo_did_not_create_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = subprocess.run([*DEMO, "--data-dir", str(tmp_path), "--once"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "not created by the demo" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_missing_connector_is_reported_with_the_package_name() -> None:
    with pytest.raises(MissingCommand, match="install the danube-sink-nothing package"):
        find_command("danube-sink-nothing", "danube-sink-nothing")


def test_payment_schema_is_the_same_everywhere() -> None:
    shared = json.loads((ROOT / "schemas" / "payment.json").read_text())
    assert json.loads((ROOT / "example_e2e" / "schemas" / "payment.json").read_text()) == shared
    assert shared == PAYMENT_SCHEMA


def test_stripe_event_schema_is_the_same_in_the_example_and_next_to_stripe_toml() -> None:
    example = json.loads((ROOT / "example_e2e" / "schemas" / "stripe-event.json").read_text())
    config_copy = ROOT / "connectors" / "webhook" / "config" / "schemas" / "stripe-event.json"
    assert json.loads(config_copy.read_text()) == example


def test_connect_core_and_the_demo_import_no_connector_package() -> None:
    # The SDK knows no connector and no demo; the demo runs the connectors as processes, never imports them.
    code = (
        "import sys, danube_connect_core.cli as c; c.discover_commands();"
        "assert 'demo' not in c.discover_commands();"
        "import danube_connect_demo.cli, danube_connect_demo.runner;"
        "bad = [m for m in sys.modules if m.startswith(('danube_sink_', 'danube_source_'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
