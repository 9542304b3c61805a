"""Units: signature formats against published vectors, token bucket, JSON pointers, idempotency store,
settings validation (secrets from the environment only, never shown)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.config_loader import load_config
from danube_connect_core.errors import ConfigError
from danube_source_webhook import WebhookSettings, WebhookSource
from danube_source_webhook.deadlines import Deadlines
from danube_source_webhook.idempotency import Claimed, IdempotencyStore, Replay
from danube_source_webhook.json_pointer import compile_pointer, key_from
from danube_source_webhook.rate_limit import TokenBucket
from danube_source_webhook.signatures import (
    SignatureError,
    sign_github,
    sign_standard,
    sign_stripe,
    standard_secret_key,
    verify_github,
    verify_standard,
    verify_stripe,
)
from danube_source_webhook.testing import loopback_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def test_github_documentation_vector() -> None:
    # GitHub's "Validating webhook deliveries" example
    assert (
        sign_github("It's a Secret to Everybody", b"Hello, World!")
        == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_standard_webhooks_specification_vector() -> None:
    # the example of the Standard Webhooks specification and its reference libraries
    headers = sign_standard(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        b'{"test": 2432232314}',
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
    )
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_stripe_round_trip_and_tolerance() -> None:
    body = b'{"id":"evt_1"}'
    header = sign_stripe("whsec_test", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    verify_stripe({"Stripe-Signature": header}, body, ["whsec_test"], now=1_700_000_100, tolerance_s=300)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_stripe({"Stripe-Signature": header}, body, ["whsec_test"], now=1_700_000_301, tolerance_s=300)
    with pytest.raises(SignatureError, match="does not match"):
        verify_stripe(
            {"Stripe-Signature": header}, body + b" ", ["whsec_test"], now=1_700_000_000, tolerance_s=5
        )
    verify_github({"X-Hub-Signature-256": sign_github("s", body)}, body, ["old", "s"])
    h = sign_standard("whsec_" + "a" * 32, body, "id", 10)
    verify_standard(h, body, [b"x", standard_secret_key("whsec_" + "a" * 32)], now=10, tolerance_s=1)


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, capacity=3, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == 1.0  # 0.5 s until a token, answered in whole seconds
    now[0] = 0.5
    assert bucket.try_take() == 0.0
    slow = TokenBucket(rate=0.1, capacity=1, clock=lambda: now[0])
    assert slow.try_take() == 0.0
    assert slow.try_take() == 10.0


def test_json_pointer_keys() -> None:
    doc: dict[str, Any] = {
        "data": {"object": {"customer": "cus_1", "n": 7, "a/b": True}},
        "list": [1, {"k": "v"}],
    }
    assert key_from(doc, compile_pointer("/data/object/customer")) == "cus_1"
    assert key_from(doc, compile_pointer("/data/object/n")) == "7"
    assert key_from(doc, compile_pointer("/data/object/a~1b")) == "true"
    assert key_from(doc, compile_pointer("/list/1/k")) == "v"
    assert key_from(doc, compile_pointer("/list/01")) is None
    assert key_from(doc, compile_pointer("/missing/x")) is None
    assert key_from("text", compile_pointer("/a")) is None


async def test_deadlines_cancel_only_expired_requests_and_leave_the_task_clean() -> None:
    deadlines = Deadlines(0.05)
    outcomes: dict[str, tuple[bool, int]] = {}

    async def request(name: str, work: float) -> None:
        entry = deadlines.enter()
        try:
            await asyncio.sleep(work)
            outcomes[name] = (False, 0)
        except asyncio.CancelledError:
            if not entry.expired():
                raise
            outcomes[name] = (True, 0)
        finally:
            deadlines.leave(entry)
        # the sweep's cancellation was withdrawn: the task (a keep-alive connection's) carries on
        current = asyncio.current_task()
        assert current is not None
        outcomes[name] = (outcomes[name][0], current.cancelling())
        await asyncio.sleep(0)

    quick = asyncio.create_task(request("quick", 0))
    slow = asyncio.create_task(request("slow", 30))
    await asyncio.gather(quick, slow)
    assert outcomes == {"quick": (False, 0), "slow": (True, 0)}

    # a cancellation from elsewhere (shutdown) is not taken for the deadline
    other = asyncio.create_task(request("other", 30))
    await asyncio.sleep(0)
    other.cancel()
    with pytest.raises(asyncio.CancelledError):
        await other
    assert "other" not in outcomes


async def test_idempotency_store_replays_and_forgets_failures() -> None:
    now = [0.0]
    store = IdempotencyStore(window_s=10, max_entries=2, clock=lambda: now[0])
    first = await store.claim("k")
    assert isinstance(first, Claimed)
    waiter = asyncio.create_task(store.claim("k"))  # waits for the first outcome
    await asyncio.sleep(0)
    first.succeeded(200, {"status": "accepted"})
    assert await waiter == Replay(200, {"status": "accepted"})
    now[0] = 11.0  # past the window
    assert isinstance(await store.claim("k"), Claimed)
    failing = await store.claim("f")
    assert isinstance(failing, Claimed)
    failing.failed()
    assert isinstance(await store.claim("f"), Claimed)  # a failure is not remembered
    await store.claim("a")
    await store.claim("b")
    assert len(store) == 2  # bounded


def test_settings_need_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBHOOK_API_KEY", raising=False)
    monkeypatch.delenv("WEBHOOK_HMAC_SECRET", raising=False)
    endpoint = {"path": "/a", "danube_topic": "/default/a"}
    with pytest.raises(ValueError, match="WEBHOOK_API_KEY is not set"):
        WebhookSettings.model_validate({"auth": {"type": "api_key"}, "endpoints": [endpoint]})
    with pytest.raises(ValueError, match="name of an environment variable"):
        WebhookSettings.model_validate(
            {"auth": {"type": "api_key", "key_env": "literal secret!"}, "endpoints": [endpoint]}
        )
    monkeypatch.setenv("WEBHOOK_HMAC_SECRET", "not base64 !!")
    with pytest.raises(ValueError, match="base64") as info:
        WebhookSettings.model_validate(
            {"auth": {"type": "hmac", "format": "standard"}, "endpoints": [endpoint]}
        )
    assert "not base64 !!" not in str(info.value)
    # no [webhook.auth]: open without WEBHOOK_API_KEY, api_key with it
    open_ = WebhookSettings.model_validate({"endpoints": [endpoint]})
    assert open_.effective_auth(open_.endpoints[0]) is None
    monkeypatch.setenv("WEBHOOK_API_KEY", "k")
    keyed = WebhookSettings.model_validate({"endpoints": [endpoint]})
    auth = keyed.effective_auth(keyed.endpoints[0])
    assert auth is not None and auth.type == "api_key"
    with pytest.raises(ValueError, match="twice"):
        WebhookSettings.model_validate({"endpoints": [endpoint, endpoint]})
    with pytest.raises(ValueError, match="reserved"):
        WebhookSettings.model_validate({"endpoints": [{"path": "/health", "danube_topic": "/default/a"}]})


def test_seed_config_loads_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_API_KEY", "demo-api-key-e2e-12345")
    monkeypatch.setenv("WEBHOOK_PORT", "18080")
    config = load_config(CONFIG_DIR / "webhook-connector.toml", WebhookSource.config_spec())
    settings = config.settings_as(WebhookSettings)
    assert config.connector_name == "webhook-source-e2e"
    assert settings.port == 18080 and settings.host == "0.0.0.0"
    (endpoint,) = settings.endpoints
    assert (endpoint.path, endpoint.danube_topic, endpoint.partitions, endpoint.reliable_dispatch) == (
        "/webhooks/stripe/payments",
        "/stripe/payments",
        4,
        False,
    )
    schema = config.schema_for("/stripe/payments")
    assert schema is not None and schema.subject == "stripe-payment-v1" and schema.schema_file is not None
    auth = settings.effective_auth(endpoint)
    assert auth is not None and auth.type == "api_key"


def test_loopback_config_moves_only_the_listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_API_KEY", "k")
    monkeypatch.delenv("WEBHOOK_PORT", raising=False)
    monkeypatch.delenv("WEBHOOK_HOST", raising=False)
    example = CONFIG_DIR / "webhook-connector.toml"
    copy = loopback_config(example, tmp_path / "run")
    assert copy == tmp_path / "run" / "webhook-connector.toml"
    original = load_config(example, WebhookSource.config_spec(), environ={"WEBHOOK_API_KEY": "k"})
    config = load_config(copy, WebhookSource.config_spec(), environ={"WEBHOOK_API_KEY": "k"})
    settings = config.settings_as(WebhookSettings)
    assert (settings.host, settings.port) == ("127.0.0.1", 0)
    assert settings.endpoints == original.settings_as(WebhookSettings).endpoints
    schema = config.schema_for("/stripe/payments")
    assert (
        schema is not None and schema.schema_file == (tmp_path / "run" / "schemas" / "payment.json").resolve()
    )
    assert schema.schema_file.read_bytes() == (CONFIG_DIR / "schemas" / "payment.json").read_bytes()


def test_full_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "WEBHOOK_HMAC_SECRET",
        "WEBHOOK_HMAC_SECRET_PREVIOUS",
        "GITHUB_WEBHOOK_SECRET",
        "WEBHOOK_JWT_SECRET",
    ):
        monkeypatch.setenv(name, f"value-of-{name}")
    config = load_config(CONFIG_DIR / "webhook-full.toml", WebhookSource.config_spec())
    assert len(config.settings_as(WebhookSettings).endpoints) == 3
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET")
    with pytest.raises(ConfigError) as info:
        load_config(CONFIG_DIR / "webhook-full.toml", WebhookSource.config_spec())
    assert "GITHUB_WEBHOOK_SECRET is not set" in str(info.value)
    assert "value-of-" not in str(info.value)


@pytest.mark.integration  # console script processes
def test_console_script_check_exit_codes(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "danube-source-webhook"
    env = {"PATH": str(script.parent), "WEBHOOK_API_KEY": "k"}
    ok = subprocess.run(
        [str(script), "--config", str(CONFIG_DIR / "webhook-connector.toml"), "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'danube_service_url = "http://127.0.0.1:1"\nconnector_name = "x"\n[webhook]\nport = 1\nhots = "x"\n'
        '[[webhook.endpoints]]\npath = "/a"\ndanube_topic = "/default/a"\n'
    )
    failed = subprocess.run(
        [str(script), "--config", str(bad), "--check"], capture_output=True, text=True, env=env, timeout=60
    )
    assert failed.returncode == 2
    assert "webhook.hots: unknown key" in failed.stderr


def test_the_server_listens_and_stops_on_uvloop() -> None:
    """uvloop's server is not an ``asyncio.AbstractServer``; the webhook server must still start on it,
    answer, and stop on request (not report that it stopped on its own)."""
    import aiohttp
    import uvloop
    from danube_source_webhook.metrics import WebhookMetrics
    from danube_source_webhook.server import WebhookServer
    from prometheus_client import CollectorRegistry

    async def scenario() -> tuple[int, int, bool]:
        metrics = WebhookMetrics("uvloop-test", CollectorRegistry())
        server = WebhookServer({}, metrics, "127.0.0.1", 0)
        port = await server.start()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health") as health:
                health_status = health.status  # readiness is the core's, on the metrics port
            async with session.post(f"http://127.0.0.1:{port}/nowhere", data=b"{}") as missing:
                missing_status = missing.status
        await server.stop()
        return health_status, missing_status, server.serving.cancelled()

    health_status, missing_status, cancelled = uvloop.run(scenario())
    assert (health_status, missing_status) == (404, 404)
    assert cancelled, "stop() must end the serving task by cancelling it, not with ServerStopped"
