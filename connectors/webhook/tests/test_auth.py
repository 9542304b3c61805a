"""Signed webhooks with real signatures (Stripe, GitHub, Standard Webhooks) and bearer JWTs.

Each format: the current secret is accepted, the previous one (rotation) too; a one-byte change of the
body, a wrong secret, a missing header and (Stripe, Standard) a timestamp outside the tolerance answer
401. The topic is read back: it holds exactly the accepted events.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from danube_source_webhook.signatures import sign_github, sign_standard, sign_stripe

from .webhook_testsupport import OpenReader, StartWebhook, payment

TOPIC = "/default/signed"
STRIPE_SECRET = "whsec_stripe_current_0123456789"
STRIPE_OLD = "whsec_stripe_previous_abcdef"
GITHUB_SECRET = "github-current-secret"
GITHUB_OLD = "github-previous-secret"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-current-key-32-bytes!!!").decode()
STANDARD_OLD = "whsec_" + base64.b64encode(b"standard-previous-key-32-bytes!!").decode()
JWT_SECRET = "jwt-hs256-secret-for-tests-0123456789"


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "STRIPE_SECRET": STRIPE_SECRET,
        "STRIPE_SECRET_OLD": STRIPE_OLD,
        "GH_SECRET": GITHUB_SECRET,
        "GH_SECRET_OLD": GITHUB_OLD,
        "WEBHOOK_HMAC_SECRET": STANDARD_SECRET,
        "WEBHOOK_HMAC_SECRET_PREVIOUS": STANDARD_OLD,  # read by default, no TOML key needed
        "JWT_SECRET": JWT_SECRET,
    }.items():
        monkeypatch.setenv(name, value)


def tamper(body: bytes) -> bytes:
    """The same body with one byte changed (still valid JSON and valid for the schema)."""
    i = body.index(b'"amount":') + len(b'"amount":')
    return body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]


async def test_hmac_signatures_of_all_three_formats(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader, secrets_env: None, tmp_path: Path
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "es256.pem").write_bytes(pem)
    endpoints = [
        {
            "path": "/stripe",
            "auth": {
                "type": "hmac",
                "format": "stripe",
                "secret_env": "STRIPE_SECRET",
                "previous_secret_env": "STRIPE_SECRET_OLD",
            },
        },
        {
            "path": "/github",
            "auth": {
                "type": "hmac",
                "format": "github",
                "secret_env": "GH_SECRET",
                "previous_secret_env": "GH_SECRET_OLD",
            },
        },
        {"path": "/standard", "auth": {"type": "hmac", "format": "standard", "tolerance_s": 60}},
        {
            "path": "/jwt",
            "auth": {
                "type": "jwt",
                "secret_env": "JWT_SECRET",
                "issuer": "https://issuer.test",
                "audience": "webhooks",
            },
        },
        {
            "path": "/jwt-es256",
            "auth": {"type": "jwt", "algorithm": "ES256", "public_key_file": str(tmp_path / "es256.pem")},
        },
    ]
    for e in endpoints:
        e.update({"danube_topic": TOPIC, "reliable_dispatch": True})
    hook = await start_webhook(broker.url, {"endpoints": endpoints})
    reader = await open_reader(broker.url, TOPIC)
    accepted: list[int] = []
    seq = 0

    def next_body() -> tuple[int, bytes]:
        nonlocal seq
        seq += 1
        return seq, orjson.dumps(payment(seq, seq=seq))

    async def expect(path: str, body: bytes, headers: dict[str, str], status: int, n: int) -> dict[str, Any]:
        got, answer, _ = await hook.post(path, body, headers=headers, api_key=None)
        assert got == status, (path, answer)
        if status == 200:
            accepted.append(n)
        else:
            assert answer["error"] == "unauthorized"
            for secret in (STRIPE_SECRET, GITHUB_SECRET, STANDARD_SECRET, JWT_SECRET):
                assert secret not in str(answer)
        return answer

    now = int(time.time())
    # Stripe
    for secret in (STRIPE_SECRET, STRIPE_OLD):
        n, body = next_body()
        await expect("/stripe", body, {"Stripe-Signature": sign_stripe(secret, body, now)}, 200, n)
    n, body = next_body()
    await expect("/stripe", tamper(body), {"Stripe-Signature": sign_stripe(STRIPE_SECRET, body, now)}, 401, n)
    answer = await expect(
        "/stripe", body, {"Stripe-Signature": sign_stripe(STRIPE_SECRET, body, now - 301)}, 401, n
    )
    assert "tolerance" in answer["message"]
    await expect("/stripe", body, {"Stripe-Signature": sign_stripe("whsec_other", body, now)}, 401, n)
    await expect("/stripe", body, {}, 401, n)
    await expect("/stripe", body, {"Stripe-Signature": "garbage"}, 401, n)
    # several v1 signatures (Stripe sends one per active secret): one matching is enough
    both = sign_stripe("whsec_other", body, now) + "," + sign_stripe(STRIPE_SECRET, body, now).split(",")[1]
    await expect("/stripe", body, {"Stripe-Signature": both}, 200, n)

    # GitHub
    for secret in (GITHUB_SECRET, GITHUB_OLD):
        n, body = next_body()
        await expect("/github", body, {"X-Hub-Signature-256": sign_github(secret, body)}, 200, n)
    n, body = next_body()
    await expect("/github", tamper(body), {"X-Hub-Signature-256": sign_github(GITHUB_SECRET, body)}, 401, n)
    await expect("/github", body, {"X-Hub-Signature-256": sign_github("nope", body)}, 401, n)
    await expect("/github", body, {"X-Hub-Signature-256": "sha1=abcd"}, 401, n)
    await expect("/github", body, {}, 401, n)

    # Standard Webhooks
    for secret in (STANDARD_SECRET, STANDARD_OLD):
        n, body = next_body()
        await expect("/standard", body, sign_standard(secret, body, f"msg_{n}", now), 200, n)
    n, body = next_body()
    await expect("/standard", tamper(body), sign_standard(STANDARD_SECRET, body, f"msg_{n}", now), 401, n)
    await expect("/standard", body, sign_standard(STANDARD_SECRET, body, f"msg_{n}", now - 90), 401, n)
    await expect("/standard", body, sign_standard(STANDARD_SECRET, body, f"msg_{n}", now + 90), 401, n)
    headers = sign_standard(STANDARD_SECRET, body, f"msg_{n}", now)
    await expect("/standard", body, {**headers, "webhook-id": "msg_other"}, 401, n)
    await expect("/standard", body, {k: v for k, v in headers.items() if k != "webhook-id"}, 401, n)
    await expect("/standard", body, {**headers, "webhook-signature": "v1,AAAA v2,xyz"}, 401, n)
    multi = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    await expect("/standard", body, multi, 200, n)

    # bearer JWT, HS256 with issuer and audience
    claims = {"iss": "https://issuer.test", "aud": "webhooks", "exp": now + 60}
    n, body = next_body()
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    await expect("/jwt", body, {"Authorization": f"Bearer {token}"}, 200, n)
    n, body = next_body()
    for bad in (
        jwt.encode({**claims, "exp": now - 10}, JWT_SECRET, algorithm="HS256"),
        jwt.encode({**claims, "iss": "https://evil.test"}, JWT_SECRET, algorithm="HS256"),
        jwt.encode({**claims, "aud": "other"}, JWT_SECRET, algorithm="HS256"),
        jwt.encode(claims, "another-secret-of-sufficient-length-000", algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
        "not-a-jwt",
    ):
        await expect("/jwt", body, {"Authorization": f"Bearer {bad}"}, 401, n)
    await expect("/jwt", body, {}, 401, n)
    got, _, resp_headers = await hook.post("/jwt", body, api_key=None)
    assert got == 401 and resp_headers["WWW-Authenticate"].startswith("Bearer")

    # bearer JWT, ES256 verified with a public key file
    n, body = next_body()
    token = jwt.encode({"sub": "svc", "exp": now + 60}, private, algorithm="ES256")
    await expect("/jwt-es256", body, {"Authorization": f"Bearer {token}"}, 200, n)
    n, body = next_body()
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode({"sub": "svc", "exp": now + 60}, other, algorithm="ES256")
    await expect("/jwt-es256", body, {"Authorization": f"Bearer {forged}"}, 401, n)

    # the topic holds exactly the accepted events, each once
    marker = orjson.dumps(payment(0, seq="end"))
    await expect("/github", marker, {"X-Hub-Signature-256": sign_github(GITHUB_SECRET, marker)}, 200, -1)
    await reader.until(lambda msgs: any(b'"end"' in m.payload for m in msgs))
    assert [p["seq"] for p in reader.payloads()] == [*accepted[:-1], "end"]
    assert len(accepted) - 1 == 10
