"""The shared test helpers: the TOML writer reads back equal, the waits see what the endpoint answers."""

from __future__ import annotations

import datetime as dt
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from danube_connect_core.testing.toml_writer import to_toml, write_connector_toml
from danube_connect_core.testing.waits import wait_for_status
from hypothesis import given, settings
from hypothesis import strategies as st

# Keys and strings TOML can hold (no lone surrogates: they cannot be written as UTF-8).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    text,
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(text, values, max_size=5))
def test_any_document_reads_back_equal(document: dict[str, Any]) -> None:
    assert tomllib.loads(to_toml(document)) == document


def test_special_floats_times_and_paths() -> None:
    document = {"nan": math.nan, "inf": math.inf, "at": dt.datetime(2026, 1, 2, 3, 4, 5), "p": Path("/a b")}
    back = tomllib.loads(to_toml(document))
    assert math.isnan(back["nan"]) and back["inf"] == math.inf
    assert back["at"] == document["at"] and back["p"] == "/a b"


def test_a_value_without_toml_form_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="None"):
        to_toml({"a": None})


def test_connector_file_has_a_free_metrics_port_unless_told(tmp_path: Path) -> None:
    path = write_connector_toml(
        tmp_path / "c" / "x.toml",
        "http://127.0.0.1:6650",
        "x",
        processing={"batch_size": 5},
        sink={"topic_mappings": [{"topic": "/default/t"}]},
    )
    assert tomllib.loads(path.read_text()) == {
        "danube_service_url": "http://127.0.0.1:6650",
        "connector_name": "x",
        "processing": {"metrics_port": 0, "batch_size": 5},
        "sink": {"topic_mappings": [{"topic": "/default/t"}]},
    }


async def test_wait_for_status_polls_until_the_answer_changes() -> None:
    answers = [503, 503, 200]

    async def ready(_: web.Request) -> web.Response:
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.Response(status=status, text=f"answer {status}")

    app = web.Application()
    app.router.add_get("/ready", ready)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await wait_for_status(port, within=60) == "answer 200"
        with pytest.raises(
            TimeoutError, match=re.escape("did not answer 204 within 0.5 s: 200 'answer 200'")
        ):
            await wait_for_status(port, "/ready", 204, within=0.5)
    finally:
        await runner.cleanup()


@pytest.fixture
def exited() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc


async def test_wait_for_status_stops_when_the_process_exits(exited: subprocess.Popen[bytes]) -> None:
    # Nothing listens on the port: the wait would go on until its deadline, but the process is gone.
    with pytest.raises(AssertionError, match="exited with 0"):
        await wait_for_status(1, within=60, proc=exited)
