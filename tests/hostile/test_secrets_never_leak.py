"""Secrets never appear in logs, metrics or error bodies (invariant 7), even while things go wrong.

- The webhook source runs as a real process (``danube-connect run webhook``, JSON logs at debug level)
  with an API key and an HMAC secret from the environment; it gets wrong keys (including near misses
  and the secret sent in the wrong header), forged signatures (including the secret itself as the
  signature), bodies that quote the secret, then the broker is stopped so publishes fail (503).
- The SurrealDB sink runs as a real process with ``SURREALDB_PASSWORD`` set and its target unreachable.

Everything each process wrote (stdout and stderr), its ``/metrics`` text and every HTTP answer (status
line, headers, body) is searched for each secret, its base64 forms and its hex form.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
from danube_connect_core.testing import ConnectorProcess, http_get
from danube_connect_core.testing.waits import logged_int, wait_for_status
from danube_embedded_broker.testing import BrokerProcess

from .hostile_support import PAYMENT_SCHEMA, payment

API_KEY = "sk_live_apikey_7f3a9c2e1d"
HMAC_SECRET = "whsec_hmacsecret_51b0e8aa"
DB_PASSWORD = "surreal-pw-9d2c41e0fe"


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ]


def assert_no_secret(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"{where} contains a form of a secret: {form!r}"


async def test_webhook_never_shows_its_api_key_or_hmac_secret(
    tmp_path: Path, broker_process: BrokerProcess
) -> None:
    url = broker_process.start()
    config = tmp_path / "webhook.toml"
    config.write_text(
        f"""
danube_service_url = "{url}"
connector_name = "secrets-webhook"
[processing]
metrics_port = 0
log_level = "debug"
[retry]
max_retries = 1
retry_backoff_ms = 50
max_backoff_ms = 100
[[schemas]]
topic = "/default/secret-payments"
subject = "secret-payment-v1"
schema_type = "json_schema"
schema_file = "{PAYMENT_SCHEMA}"
[webhook]
host = "127.0.0.1"
port = 0
request_timeout_ms = 3000
[webhook.auth]
type = "api_key"
key_env = "WEBHOOK_API_KEY"
[[webhook.endpoints]]
path = "/keyed"
danube_topic = "/default/secret-payments"
reliable_dispatch = true
[[webhook.endpoints]]
path = "/signed"
danube_topic = "/default/secret-payments"
reliable_dispatch = true
[webhook.endpoints.auth]
type = "hmac"
format = "github"
secret_env = "WEBHOOK_HMAC_SECRET"
"""
    )
    env = {"WEBHOOK_API_KEY": API_KEY, "WEBHOOK_HMAC_SECRET": HMAC_SECRET, "LOG_FORMAT": "json"}
    proc = ConnectorProcess("webhook", config, env=env).start()
    answers: list[str] = []
    try:
        port = await asyncio.to_thread(logged_int, proc, "webhook_port")
        metrics_port = await asyncio.to_thread(proc.metrics_port)
        base = f"http://127.0.0.1:{port}"
        good = orjson.dumps(payment(1))

        # intake opens once the producers exist (/ready 200 on the metrics port, the core's readiness)
        await wait_for_status(metrics_port, within=60)
        async with aiohttp.ClientSession() as session:

            async def post(path: str, body: bytes, headers: dict[str, str]) -> int:
                h = {"Content-Type": "application/json", **headers}
                async with session.post(base + path, data=body, headers=h) as resp:
                    text = await resp.text(errors="replace")
                    answers.append(f"{resp.status} {dict(resp.headers)} {text}")
                    return resp.status

            def sign(body: bytes, secret: str) -> str:
                return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

            # wrong API keys: near misses, prefixes, the HMAC secret, the key in another header
            for key in (API_KEY[:-1], API_KEY + "x", API_KEY.upper(), HMAC_SECRET, "", " "):
                assert await post("/keyed", good, {"x-api-key": key}) == 401
            assert await post("/keyed", good, {"Authorization": f"Bearer {API_KEY}"}) == 401
            # a body quoting the secret from a sender without the key; a 422 of an authenticated
            # sender lists its own values (by design), so that one uses no secret
            quoted = orjson.dumps(payment(2, event=API_KEY, currency=HMAC_SECRET))
            assert await post("/keyed", quoted, {"x-api-key": "wrong"}) == 401
            assert await post("/keyed", orjson.dumps(payment(3, amount=-1)), {"x-api-key": API_KEY}) == 422
            assert await post("/keyed", API_KEY.encode() + b"{", {"x-api-key": API_KEY}) == 400
            # forged signatures, including the secret itself and a signature made with the API key
            for sig in (
                sign(good, HMAC_SECRET + "x"),
                sign(good, API_KEY),
                "sha256=" + HMAC_SECRET,
                HMAC_SECRET,
                sign(good + b" ", HMAC_SECRET),
            ):
                assert await post("/signed", good, {"X-Hub-Signature-256": sig}) == 401
            # accepted ones, so the success path is logged too
            assert await post("/keyed", good, {"x-api-key": API_KEY}) == 200
            assert await post("/signed", good, {"X-Hub-Signature-256": sign(good, HMAC_SECRET)}) == 200

            # the broker goes away: publishes fail with 503 (the failure path logs at warning)
            assert await asyncio.to_thread(broker_process.stop) == 0
            for path, headers in (
                ("/keyed", {"x-api-key": API_KEY}),
                ("/signed", {"X-Hub-Signature-256": sign(good, HMAC_SECRET)}),
            ):
                assert await post(path, good, headers) == 503

            for path in ("/health", "/ready"):
                async with session.get(f"http://127.0.0.1:{metrics_port}{path}") as resp:
                    answers.append(await resp.text())
        metrics = (await asyncio.to_thread(http_get, metrics_port, "/metrics"))[1]
        assert "danube_webhook_requests_total" in metrics
    finally:
        proc.signal()
        code = await asyncio.to_thread(proc.wait, 60)
    assert code in (0, 1)  # 0 after the drain; 1 if the broker outage made the drain fail
    logs = "\n".join(proc.lines)
    assert '"level"' in logs or '"levelname"' in logs or "webhook_port" in logs  # logs were captured
    secrets = [API_KEY, HMAC_SECRET]
    assert_no_secret(logs, secrets, "webhook logs")
    assert_no_secret(metrics, secrets, "webhook /metrics")
    for answer in answers:
        assert_no_secret(answer, secrets, f"HTTP answer {answer[:80]!r}")


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("danube_sink_surrealdb") is None,
    reason="surrealdb sink not installed",
)
def test_surrealdb_sink_never_shows_its_password_when_the_target_is_unreachable(tmp_path: Path) -> None:
    config = tmp_path / "surrealdb.toml"
    config.write_text(
        """
danube_service_url = "http://127.0.0.1:1"
connector_name = "secrets-surrealdb"
[processing]
metrics_port = 0
log_level = "debug"
health_check_interval_ms = 200
[retry]
max_retries = 2
retry_backoff_ms = 50
max_backoff_ms = 100
[surrealdb]
url = "ws://127.0.0.1:1"
username = "root"
request_timeout_ms = 1000
[[surrealdb.topic_mappings]]
topic = "/default/secret-payments"
subscription = "secret-sink"
table = "payments"
"""
    )
    env = {"SURREALDB_PASSWORD": DB_PASSWORD, "LOG_FORMAT": "json"}
    proc = ConnectorProcess("surrealdb", config, env=env).start()
    metrics = ""
    try:
        # the target outage is retried (not-ready) or fatal, depending on the connector: wait until it
        # has said something about it at warning level or above, or ended
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and proc.proc is not None and proc.proc.poll() is None:
            if any('"warning"' in line.lower() or '"error"' in line.lower() for line in proc.lines):
                break
            time.sleep(0.1)
        if proc.proc is not None and proc.proc.poll() is None and proc._port is not None:
            for path in ("/metrics", "/health", "/ready"):
                status, text = http_get(proc._port, path)
                metrics += f"\n{path} {status}\n{text}"
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.signal()
        code = proc.wait(60)
    assert code in (0, 1), proc.log_tail()
    assert any("127.0.0.1:1" in line or "surreal" in line.lower() for line in proc.lines), proc.log_tail()
    logs = "\n".join(proc.lines)
    assert logs, "the sink wrote no logs"
    assert_no_secret(logs, [DB_PASSWORD], "surrealdb sink logs")
    assert_no_secret(metrics, [DB_PASSWORD], "surrealdb sink /metrics, /health, /ready")
    # the same config through --check and validate: answers never carry the password either
    for cmd in (
        [sys.executable, "-c", "from danube_connect_core.cli import main; main()", "validate", "--connector",
         "surrealdb", str(config)],
    ):  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ, **env})
        assert_no_secret(done.stdout + done.stderr, [DB_PASSWORD], "validate output")
