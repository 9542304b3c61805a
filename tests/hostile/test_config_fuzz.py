"""Hostile configuration files (invariant 4): whatever the TOML says, `danube-connect validate FILE` and
a connector's `--check` either accept it (exit 0) or print ONE line naming the file (and the key when
there is one) and exit 2 — never a Python traceback, never a secret's value (invariant 7).

Documents are drawn by hypothesis around the real shape of the core config and the webhook section
(valid documents with random edits: keys added, values of the wrong type, tables where scalars belong,
deep nesting, TOML's inf/nan/dates, huge integers), plus raw bytes that are not TOML or not UTF-8.
The bulk runs in-process through the same entry points the console scripts call (``validate.run`` and
``connector_main(..., ["--check"])``); a bounded sample runs as real subprocesses.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.commands import validate
from danube_connect_core.lifecycle import connector_main
from danube_connect_core.testing.toml_writer import to_toml
from hypothesis import strategies as st

from .hostile_support import PAYMENT_SCHEMA, collect

danube_source_webhook = pytest.importorskip("danube_source_webhook")

SECRET = "cfg-fuzz-secret-4b1d9e77"
SECRET_ENVS = ("WEBHOOK_API_KEY", "WEBHOOK_HMAC_SECRET", "WEBHOOK_JWT_SECRET", "FUZZ_TOKEN")

# -- documents -------------------------------------------------------------------------------------


def base_doc() -> dict[str, Any]:
    """A valid webhook configuration touching most of the real shape."""
    return {
        "danube_service_url": "http://127.0.0.1:6650",
        "connector_name": "fuzz-webhook",
        "retry": {"max_retries": 3, "retry_backoff_ms": 100, "max_backoff_ms": 1000},
        "processing": {"batch_size": 100, "metrics_port": 0, "log_level": "info"},
        "errors": {"tolerance": "all"},
        "schemas": [
            {
                "topic": "/default/payments",
                "subject": "payment-v1",
                "schema_type": "json_schema",
                "schema_file": str(PAYMENT_SCHEMA),
                "version_strategy": "latest",
            }
        ],
        "danube": {"tls": False, "token_env": "FUZZ_TOKEN"},
        "webhook": {
            "host": "127.0.0.1",
            "port": 0,
            "max_body_bytes": 4096,
            "auth": {"type": "api_key", "header": "x-api-key", "key_env": "WEBHOOK_API_KEY"},
            "rate_limit": {"rate_per_s": 10, "burst": 20},
            "endpoints": [
                {
                    "path": "/hook",
                    "danube_topic": "/default/payments",
                    "partitions": 2,
                    "key": "/customer",
                    "idempotency": {"header": "Idempotency-Key", "window_s": 60},
                    "auth": {"type": "hmac", "format": "stripe", "secret_env": "WEBHOOK_HMAC_SECRET"},
                }
            ],
        },
    }


KEYS = [
    "danube_service_url", "connector_name", "retry", "max_retries", "retry_backoff_ms", "processing",
    "batch_size", "metrics_port", "log_level", "log_format", "shutdown_timeout_ms", "errors", "tolerance",
    "dead_letter_topic", "schemas", "topic", "subject", "schema_type", "schema_file", "version_strategy",
    "pinned", "minimum", "auto_register", "danube", "tls", "ca_file", "token_env", "webhook", "host", "port",
    "max_body_bytes", "request_timeout_ms", "max_in_flight", "auth", "type", "key_env", "secret_env",
    "previous_secret_env", "format", "tolerance_s", "algorithm", "public_key_file", "rate_limit",
    "rate_per_s", "burst", "endpoints", "path", "danube_topic", "partitions", "reliable_dispatch", "key",
    "success_status", "idempotency", "header", "window_s", "max_entries",
]  # fmt: skip
keys = st.sampled_from(KEYS) | st.text(min_size=1, max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),  # inf and nan are TOML too
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "/",
            "..",
            "/default/x",
            "WEBHOOK_API_KEY",
            "UNSET_VAR_X",
            "none",
            "hmac",
            "jwt",
            "api_key",
            "stripe",
            "RS256",
            "/health",
            "latest",
            "json_schema",
            "avro",
            str(PAYMENT_SCHEMA),
            "/nonexistent/schema.json",
            "http://[::1",
            "\x00",
        ]
    ),
    st.datetimes(),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)


def _apply(doc: dict[str, Any], path: list[str | int], value: Any, delete: bool) -> None:
    node: Any = doc
    for step in path[:-1]:
        if isinstance(node, list):
            if not node:
                return
            node = node[0]
        if not isinstance(node, dict):
            return
        node = node.setdefault(step, {})
    if isinstance(node, list):
        node = node[0] if node else {}
    if not isinstance(node, dict):
        return
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


edits = st.lists(
    st.tuples(st.lists(keys, min_size=1, max_size=4), values, st.booleans()),
    min_size=1,
    max_size=3,
)


def _mutated(changes: list[tuple[list[str], Any, bool]]) -> bytes:
    doc = base_doc()
    for path, value, delete in changes:
        _apply(doc, list(path), value, delete)
    return to_toml(doc).encode()


def _deep(n: int) -> bytes:
    return ("[webhook]\nx = " + "[" * n + "]" * n + "\n").encode()


documents = st.one_of(
    edits.map(_mutated),
    st.dictionaries(keys, values, max_size=5).map(lambda d: to_toml(d).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.integers(1, 3000).map(_deep),
    st.just(to_toml(base_doc()).encode()),
    st.just(b'connector_name = "\xff\xfe"\n[webhook]\n'),
    st.just(b"[webhook]\n[webhook]\n"),
    st.just(b'danube_service_url = "x"\nconnector_name = "y"\n[webhook]\nport = 99999999999999999999999\n'),
)


# -- checks ----------------------------------------------------------------------------------------


def check_answer(code: int, out: str, err: str, file: Path) -> str | None:
    """Asserts the contract; returns the error line (None when accepted)."""
    assert "Traceback" not in out + err, (file.read_bytes()[:500], err)
    assert SECRET not in out + err
    assert code in (0, 2), (code, out, err)
    if code == 0:
        return None
    line = err.strip()
    assert line and "\n" not in line, err
    assert str(file) in line, line
    return line


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in SECRET_ENVS:
        monkeypatch.setenv(name, SECRET)
    monkeypatch.delenv("CONNECTOR_CONFIG_PATH", raising=False)
    return {name: SECRET for name in SECRET_ENVS}


def test_generated_configs_are_accepted_or_refused_in_one_line_in_process(
    tmp_path: Path, secrets_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = collect(documents, 300)
    outcomes = {"ok": 0, "refused": 0, "with_key": 0}
    for i, data in enumerate(docs):
        file = tmp_path / f"doc-{i}.toml"
        file.write_bytes(data)
        # danube-connect validate FILE (connector found from the sections)
        code = validate.run(argparse.Namespace(file=str(file), connector=None, connect=False))
        out, err = capsys.readouterr()
        line = check_answer(code, out, err, file)
        # danube-source-webhook --config FILE --check
        with pytest.raises(SystemExit) as exited:
            connector_main(danube_source_webhook.WebhookSource, ["--config", str(file), "--check"])
        out2, err2 = capsys.readouterr()
        line2 = check_answer(int(exited.value.code or 0), out2, err2, file)
        outcomes["ok" if line is None else "refused"] += 1
        if line2 is not None and line2.count(": ") >= 3:  # "config error: FILE: KEY: message"
            outcomes["with_key"] += 1
    assert outcomes["ok"] >= 1 and outcomes["refused"] >= 150, outcomes
    assert outcomes["with_key"] >= 100, outcomes


def test_generated_configs_as_real_processes(tmp_path: Path, secrets_env: dict[str, str]) -> None:
    """30 subprocesses: `danube-connect validate` (2 finding the connector by section, which imports
    every installed connector and costs seconds each; 13 with ``--connector webhook``) and 15
    `danube-source-webhook --check`."""
    docs = collect(documents, 15)
    env = {**os.environ, **secrets_env}
    validate_cmd = [sys.executable, "-c", "from danube_connect_core.cli import main; main()", "validate"]
    check_cmd = [sys.executable, "-c", "from danube_source_webhook.connector import main; main()"]
    jobs: list[tuple[list[str], Path]] = []
    for i, data in enumerate(docs):
        file = tmp_path / f"proc-{i}.toml"
        file.write_bytes(data)
        by_name = [] if i < 2 else ["--connector", "webhook"]
        jobs.append(([*validate_cmd, *by_name, str(file)], file))
        jobs.append(([*check_cmd, "--config", str(file), "--check"], file))

    def run(job: tuple[list[str], Path]) -> tuple[subprocess.CompletedProcess[str], Path]:
        cmd, file = job
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120), file

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, jobs))
    assert len(results) == 30
    for proc, file in results:
        check_answer(proc.returncode, proc.stdout, proc.stderr, file)
