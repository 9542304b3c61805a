"""Deliveries as the providers really send them, signed with the providers' own libraries.

- Stripe (``stripe``): the shipped config/stripe.toml, loaded as a user runs it, takes a real-shaped event
  delivered three times (fresh signature each time, as Stripe retries) and publishes it once, byte for
  byte, with what a consumer needs to verify it again with the same library.
- Standard Webhooks (``standardwebhooks``) and Svix (``svix``): both header spellings, secrets with and
  without base64 padding, de-duplication on the delivery id.
- GitHub (``githubkit``): case-exact hex digests, form-encoded deliveries, de-duplication on
  ``X-GitHub-Delivery``.
- ``X-Request-Id`` on every answer, and the configuration errors of the new options.

None of the signatures here is produced by the connector's own code.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
import pytest_asyncio
import standardwebhooks
import stripe
import svix.webhooks
from danube_connect_core.config_loader import load_config
from danube_connect_core.errors import ConfigError
from danube_connect_core.testing import start_runtime
from danube_source_webhook import WebhookSettings, WebhookSource
from githubkit import webhooks as github_webhooks
from pydantic import ValidationError

from .webhook_testsupport import OpenReader, StartWebhook, payment, payment_schema

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
STRIPE_SECRET = "whsec_test_stripe_signing_secret_0123456789"
# 32 bytes: base64 needs one '=' of padding, so the padded and the unpadded spellings differ.
STANDARD_KEY = b"standard-webhooks-key-31-bytes!!"[:31]
STANDARD_PADDED = "whsec_" + base64.b64encode(STANDARD_KEY).decode()
STANDARD_UNPADDED = STANDARD_PADDED.rstrip("=")
GITHUB_SECRET = "github-webhook-secret-for-tests"


def stripe_event(event_type: str, object_id: str) -> dict[str, Any]:
    """An event as Stripe delivers it (envelope fields and a nested object, lower-case currency)."""
    obj: dict[str, Any] = {
        "id": object_id,
        "object": "payment_intent" if object_id.startswith("pi_") else "charge",
        "amount": 2_000,
        "amount_received": 2_000,
        "currency": "usd",
        "customer": "cus_NffrFeUfNV2Hib",
        "livemode": False,
        "metadata": {"order_id": "6735"},
        "status": "succeeded",
        "created": 1_733_300_000,
    }
    return {
        "id": "evt_" + uuid.uuid4().hex[:24],
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_" + uuid.uuid4().hex[:14], "idempotency_key": str(uuid.uuid4())},
        "type": event_type,
    }


@pytest_asyncio.fixture
async def stripe_pipeline(
    broker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, WebhookSource, int, aiohttp.ClientSession]]:
    """config/stripe.toml as shipped, on an embedded broker with namespace ``stripe``; only the broker
    URL and the ports come from the environment, as a deployment sets them."""
    broker = await broker_factory(namespaces=("stripe",))
    environ = {
        "DANUBE_SERVICE_URL": broker.url,
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": "0",
        "METRICS_PORT": "0",
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = load_config(CONFIG_DIR / "stripe.toml", WebhookSource.config_spec())
    connector = WebhookSource()
    running = await start_runtime(connector, config, wait_started=True)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        yield broker.url, connector, running.port, session
    finally:
        await session.close()
        await running.stop()


async def test_stripe_toml_publishes_a_real_stripe_event_once_when_delivered_three_times(
    stripe_pipeline: tuple[str, WebhookSource, int, aiohttp.ClientSession], open_reader: OpenReader
) -> None:
    service_url, connector, metrics_port, session = stripe_pipeline
    reader = await open_reader(service_url, "/stripe/events")
    url = f"http://127.0.0.1:{connector.port}/webhooks/stripe"

    async def deliver(
        body: bytes, timestamp: int, signed: bytes | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        signature = stripe.WebhookSignature.generate_signature_header(
            (signed or body).decode(), STRIPE_SECRET, timestamp
        )
        headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature}
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status, orjson.loads(await resp.read()), resp.headers

    succeeded = stripe_event("payment_intent.succeeded", "pi_3MtwBwLkdIwHu7ix28a3tqPa")
    # Stripe's own serialisation is pretty-printed: the bytes, not a re-serialisation, must reach the topic.
    succeeded_body = orjson.dumps(succeeded, option=orjson.OPT_INDENT_2)
    now = int(time.time())
    answers = [await deliver(succeeded_body, now + attempt) for attempt in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 200], answers
    first, *retries = answers
    assert "Idempotent-Replayed" not in first[2]
    for _, body, headers in retries:
        assert headers["Idempotent-Replayed"] == "true"
        assert body == first[1]  # the first answer again: same partition and offset

    charge = stripe_event("charge.succeeded", "ch_3MtwBwLkdIwHu7ix0snN0B15")
    charge_body = orjson.dumps(charge)
    status, _, _ = await deliver(charge_body, now)
    assert status == 200

    # A body that is not a Stripe event envelope is refused by the schema, and nothing is published.
    not_an_event = orjson.dumps(payment(1))
    status, body, _ = await deliver(not_an_event, now)
    assert status == 422 and body["error"] == "schema_violation", body
    # A signature over other bytes is refused.
    status, _, _ = await deliver(charge_body.replace(b"2000", b"2001", 1), now, signed=charge_body)
    assert status == 401

    messages = await reader.take(2)
    # Every answer above is final (a 2xx only after the broker's ack), so the count is settled.
    assert await sent_total(session, metrics_port, "/stripe/events") == 2
    assert len(messages) == 2
    by_id = {m.attributes["webhook.idempotency_key"]: m for m in messages}
    assert set(by_id) == {succeeded["id"], charge["id"]}
    for event, raw in ((succeeded, succeeded_body), (charge, charge_body)):
        message = by_id[event["id"]]
        assert message.payload == raw  # byte for byte
        signature = message.attributes["webhook.header.stripe-signature"]
        # A consumer verifies the stored delivery with Stripe's library and the same secret.
        verified = stripe.Webhook.construct_event(message.payload, signature, STRIPE_SECRET)
        assert verified["id"] == event["id"] and verified["type"] == event["type"]
        assert message.routing_key == event["type"]


async def sent_total(session: aiohttp.ClientSession, metrics_port: int, topic: str) -> float:
    """``danube_connector_messages_sent_total`` for ``topic``: publishes the broker acknowledged."""
    async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
        text = await resp.text()
    prefix = "danube_connector_messages_sent_total{"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and f'topic="{topic}"' in line
    )


async def test_standard_webhooks_and_svix_deliveries(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert STANDARD_PADDED.endswith("=") and not STANDARD_UNPADDED.endswith("=")
    monkeypatch.setenv("STD_PADDED", STANDARD_PADDED)
    monkeypatch.setenv("STD_UNPADDED", STANDARD_UNPADDED)
    topic = "/default/standard"
    endpoints = [
        {
            "path": path,
            "danube_topic": topic,
            "reliable_dispatch": True,
            "auth": {"type": "hmac", "format": "standard", "secret_env": env},
            "idempotency": {"preset": "standard"},
            "forward_headers": ["webhook-id", "svix-id"],
        }
        for path, env in (("/unpadded", "STD_UNPADDED"), ("/padded", "STD_PADDED"))
    ]
    hook = await start_webhook(broker.url, {"endpoints": endpoints})
    reader = await open_reader(broker.url, topic)
    standard = standardwebhooks.Webhook(STANDARD_PADDED)
    svix_hook = svix.webhooks.Webhook(STANDARD_PADDED)

    async def post(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        status, answer, _ = await hook.post(path, body, headers=headers, api_key=None)
        return status, answer

    expected_ids: list[str] = []
    for path in ("/unpadded", "/padded"):
        # Standard Webhooks names
        msg_id = "msg_" + uuid.uuid4().hex
        body = orjson.dumps(payment(len(expected_ids)))
        when = datetime.now(tz=UTC)
        signature = standard.sign(msg_id, when, body)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signature,
        }
        assert (await post(path, body, headers))[0] == 200
        standard.verify(body, headers)  # the library agrees the delivery is genuine
        expected_ids.append(msg_id)
        # Svix names, and the same delivery again (a retry): answered from memory, published once
        msg_id = "msg_" + uuid.uuid4().hex
        body = orjson.dumps(payment(len(expected_ids)))
        signature = svix_hook.sign(msg_id, when, body.decode())
        headers = {
            "svix-id": msg_id,
            "svix-timestamp": str(int(when.timestamp())),
            "svix-signature": signature,
        }
        svix_hook.verify(body, headers)
        for _ in range(2):
            assert (await post(path, body, headers))[0] == 200
        expected_ids.append(msg_id)
        # a wrong secret under svix names is still refused
        other = svix.webhooks.Webhook("whsec_" + base64.b64encode(b"another-key-another-key!").decode())
        bad = dict(headers, **{"svix-signature": other.sign(msg_id, when, body.decode())})
        status, answer = await post(path, body, bad)
        assert status == 401 and answer["error"] == "unauthorized"

    messages = await reader.take(len(expected_ids))
    got = [m.attributes["webhook.idempotency_key"] for m in messages]
    assert sorted(got) == sorted(expected_ids)  # each once
    for message in messages:
        forwarded = {k: v for k, v in message.attributes.items() if k.startswith("webhook.header.")}
        assert list(forwarded.values()) == [message.attributes["webhook.idempotency_key"]]


async def test_github_deliveries_case_exact_form_encoded_and_deduplicated(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GH_SECRET", GITHUB_SECRET)
    topic = "/default/github"
    endpoint = {
        "path": "/github",
        "danube_topic": topic,
        "reliable_dispatch": True,
        "auth": {"type": "hmac", "format": "github", "secret_env": "GH_SECRET"},
        "idempotency": {"preset": "github"},
        "forward_headers": ["X-GitHub-Event", "X-Hub-Signature-256"],
    }
    hook = await start_webhook(broker.url, {"endpoints": [endpoint]})
    reader = await open_reader(broker.url, topic)

    def delivery_headers(signature: str, delivery: str, event: str = "push") -> dict[str, str]:
        return {"X-Hub-Signature-256": signature, "X-GitHub-Delivery": delivery, "X-GitHub-Event": event}

    push = {"ref": "refs/heads/main", "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "commits": []}
    json_body = orjson.dumps(push)
    signature = github_webhooks.sign(GITHUB_SECRET, json_body)
    delivery = str(uuid.uuid4())

    # The digest in upper case: GitHub's libraries refuse it, and so do we.
    upper = "sha256=" + signature.removeprefix("sha256=").upper()
    assert not github_webhooks.verify(GITHUB_SECRET, json_body, upper)
    status, answer, _ = await hook.post(
        "/github", json_body, headers=delivery_headers(upper, delivery), api_key=None
    )
    assert status == 401 and answer["error"] == "unauthorized"

    # The genuine delivery, then GitHub's redelivery of it (same X-GitHub-Delivery): published once.
    for _ in range(2):
        status, _, _ = await hook.post(
            "/github", json_body, headers=delivery_headers(signature, delivery), api_key=None
        )
        assert status == 200

    # A hook configured with content type "application/x-www-form-urlencoded": payload=<json>, signed over
    # the form body as sent.
    ping = {"zen": "Keep it logically awesome.", "hook_id": 30, "hook": {"type": "Repository"}}
    form_body = urlencode({"payload": orjson.dumps(ping).decode()}).encode()
    form_signature = github_webhooks.sign(GITHUB_SECRET, form_body)
    form_delivery = str(uuid.uuid4())
    status, answer, _ = await hook.post(
        "/github",
        form_body,
        headers=delivery_headers(form_signature, form_delivery, "ping"),
        content_type="application/x-www-form-urlencoded",
        api_key=None,
    )
    assert status == 200, answer

    messages = await reader.take(2)
    by_delivery = {m.attributes["webhook.idempotency_key"]: m for m in messages}
    assert set(by_delivery) == {delivery, form_delivery}
    assert orjson.loads(by_delivery[delivery].payload) == push
    assert orjson.loads(by_delivery[form_delivery].payload) == ping
    assert by_delivery[form_delivery].attributes["webhook.header.x-github-event"] == "ping"
    assert by_delivery[delivery].attributes["webhook.header.x-hub-signature-256"] == signature


async def test_every_answer_carries_x_request_id(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader
) -> None:
    topic = "/default/request-ids"
    endpoint = {
        "path": "/ids",
        "danube_topic": topic,
        "reliable_dispatch": True,
        "idempotency": {"header": "Idempotency-Key"},
        "max_in_flight": 4,
    }
    hook = await start_webhook(broker.url, {"endpoints": [endpoint], "max_body_bytes": 2048}, schemas=[])
    await open_reader(broker.url, topic)
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("fresh", {"body": payment(1), "headers": {"Idempotency-Key": "k1"}}, 200),
        ("replay", {"body": payment(1), "headers": {"Idempotency-Key": "k1"}}, 200),
        ("unauthorized", {"body": payment(2), "api_key": "wrong"}, 401),
        ("too large", {"body": {"x": "y" * 4096}}, 413),
        ("media type", {"body": payment(3), "content_type": "text/plain"}, 415),
        ("bad json", {"body": b"{not json"}, 400),
    ]
    for name, kwargs, expected in cases:
        for given in (None, f"caller-{name.replace(' ', '-')}"):
            headers = dict(kwargs.get("headers", {}))
            if given is not None:
                headers["X-Request-Id"] = given
            status, _, answer_headers = await hook.post(
                "/ids",
                kwargs["body"],
                headers=headers,
                **{k: v for k, v in kwargs.items() if k not in ("body", "headers")},
            )
            assert status == expected, name
            request_id = answer_headers.get("X-Request-Id")
            assert request_id, f"{name}: no X-Request-Id"
            if given is not None:
                assert request_id == given, name
    for method, path, expected in (("POST", "/nowhere", 404), ("GET", "/ids", 405), ("GET", "/health", 404)):
        status, _, answer_headers = await hook.request(method, path, headers={"x-api-key": "x"})
        assert status == expected and answer_headers.get("X-Request-Id"), (method, path)


async def test_schema_violation_answer_carries_x_request_id(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader
) -> None:
    topic = "/default/request-ids-422"
    hook = await start_webhook(
        broker.url,
        {"endpoints": [{"path": "/p", "danube_topic": topic, "reliable_dispatch": True}]},
        schemas=[payment_schema(topic)],
    )
    await open_reader(broker.url, topic)
    status, body, headers = await hook.post(
        "/p", payment(1, currency="usd"), headers={"X-Request-Id": "r-422"}
    )
    assert status == 422 and body["error"] == "schema_violation"
    assert headers["X-Request-Id"] == "r-422"


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (
            {"idempotency": {"preset": "stripe", "header": "X"}},
            "preset 'stripe' sets the key itself; remove header",
        ),
        ({"idempotency": {"preset": "paypal"}}, "preset"),
        ({"idempotency": {"pointer": "id"}}, "must be a JSON pointer"),
        ({"forward_headers": ["Authorization"]}, "carries credentials"),
        ({"forward_headers": ["x-api-key"]}, "carries credentials"),
        ({"forward_headers": ["bad header"]}, "is not a header name"),
    ],
)
def test_new_options_refuse_bad_values_with_a_precise_message(endpoint: dict[str, Any], message: str) -> None:
    section = {"endpoints": [{"path": "/a", "danube_topic": "/default/a", **endpoint}]}
    with pytest.raises(ValidationError) as info:
        WebhookSettings.model_validate(section)
    assert message in str(info.value)


def test_forwarding_the_api_key_header_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_API_KEY", "k")
    section = {
        "auth": {"type": "api_key", "header": "X-Partner-Key"},
        "endpoints": [{"path": "/a", "danube_topic": "/default/a", "forward_headers": ["x-partner-key"]}],
    }
    with pytest.raises(ValidationError, match="which carries the API key"):
        WebhookSettings.model_validate(section)


def test_stripe_config_checks_and_names_a_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET is not set"):
        load_config(CONFIG_DIR / "stripe.toml", WebhookSource.config_spec())
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
    config = load_config(CONFIG_DIR / "stripe.toml", WebhookSource.config_spec())
    (endpoint,) = config.settings_as(WebhookSettings).endpoints
    assert endpoint.idempotency is not None and endpoint.idempotency.body_pointer == "/id"
    assert endpoint.publish_raw_body and endpoint.forward_headers == ["Stripe-Signature"]
