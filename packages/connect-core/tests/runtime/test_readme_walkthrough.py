"""The README's "write your first connector" walk-through, run as written (files extracted from it)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from danube_connect_core.testing import ConnectorProcess, consume, http_get, produce
from danube_connect_core.testing.waits import settled

README = Path(__file__).resolve().parents[2] / "README.md"


async def metrics_text(port: int) -> str:
    return (await asyncio.to_thread(http_get, port, "/metrics"))[1]


def extract_files(dest: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for block in re.findall(r"```\w+\n(.*?)```", README.read_text(), re.S):
        first, _, rest = block.partition("\n")
        m = re.match(r"(?:#|//) file: (\S+)", first)
        if m:
            files[m.group(1)] = rest
            (dest / m.group(1)).write_text(rest)
    return files


async def test_readme_first_connector_runs(broker: Any, tmp_path: Path) -> None:
    files = extract_files(tmp_path)
    assert set(files) == {"first_connector.py", "greeter.toml", "greeting.schema.json"}
    config = tmp_path / "greeter.toml"
    config.write_text(files["greeter.toml"].replace("metrics_port = 9090", "metrics_port = 0"))
    env = {"PYTHONPATH": str(tmp_path), "DANUBE_SERVICE_URL": broker.url}

    validate = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            "from danube_connect_core.cli import main; main()",
            "validate",
            str(config),
            "--connector",
            "first_connector:GreeterSource",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env},
        cwd=tmp_path,
    )
    assert validate.returncode == 0, validate.stderr

    await produce(broker.url, "/default/greetings", [])  # the topic and a reader before the source starts
    await consume(broker.url, "/default/greetings", "readme", 0)
    sent = 'danube_connector_messages_sent_total{connector="greeter",topic="/default/greetings"} 5.0'
    proc = ConnectorProcess("first_connector:GreeterSource", config, env=env).start()
    try:
        messages = await consume(broker.url, "/default/greetings", "readme", 5, within=60)
        port = await asyncio.to_thread(proc.metrics_port)
        # counted when the publish's answer comes back, which can be after the consumer has the message
        metrics = await settled(lambda: metrics_text(port), lambda text: sent in text)
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait) == 0, proc.log_tail()
    finally:
        proc.kill()
    assert [json.loads(m.payload) for m in messages] == [
        {"greeting": "hello danube", "n": n} for n in range(1, 6)
    ]
    assert all(m.attributes["source"] == "greeter" for m in messages)
    assert sent in metrics
