"""HMAC webhook signatures: Stripe, GitHub and Standard Webhooks, verified over the raw body.

Each ``verify_*`` function returns None when one of ``secrets`` produced the signature and raises
:class:`SignatureError` otherwise; its message says what was wrong (missing header, malformed header,
timestamp outside the tolerance, no matching signature) and never contains a secret or a signature value
(invariant 7). Comparisons are constant time. The ``sign_*`` functions produce the same headers (tests,
benchmarks and clients of this connector use them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping

__all__ = [
    "SignatureError",
    "sign_github",
    "sign_standard",
    "sign_stripe",
    "standard_secret_key",
    "verify_github",
    "verify_standard",
    "verify_stripe",
]

STRIPE_HEADER = "Stripe-Signature"
GITHUB_HEADER = "X-Hub-Signature-256"
STANDARD_ID = "webhook-id"
STANDARD_TIMESTAMP = "webhook-timestamp"
STANDARD_SIGNATURE = "webhook-signature"


class SignatureError(Exception):
    """The request's signature is missing, malformed, too old or does not match."""


def _hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _check_timestamp(raw: str, now: float, tolerance_s: int) -> int:
    try:
        ts = int(raw)
    except ValueError:
        raise SignatureError("signature timestamp is not an integer") from None
    if abs(now - ts) > tolerance_s:
        raise SignatureError(f"signature timestamp is outside the tolerance of {tolerance_s} s")
    return ts


def _any_matches(expected: Iterable[bytes], given: Iterable[bytes]) -> bool:
    given = list(given)
    found = False
    for e in expected:
        for g in given:
            # no early exit: every pair is compared, in constant time each
            found |= hmac.compare_digest(e, g)
    return found


# --- Stripe ---------------------------------------------------------------------------------------


def sign_stripe(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``body`` at ``timestamp``."""
    digest = _hmac_sha256(secret.encode(), str(timestamp).encode(), b".", body).hex()
    return f"t={timestamp},v1={digest}"


def verify_stripe(
    headers: Mapping[str, str], body: bytes, secrets: Iterable[str], *, now: float, tolerance_s: int
) -> None:
    header = headers.get(STRIPE_HEADER)
    if not header:
        raise SignatureError(f"missing {STRIPE_HEADER} header")
    timestamp: str | None = None
    v1: list[bytes] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamp = value
        elif name == "v1":
            try:
                v1.append(bytes.fromhex(value))
            except ValueError:
                continue
    if timestamp is None or not v1:
        raise SignatureError(f"malformed {STRIPE_HEADER} header (needs t= and v1=)")
    _check_timestamp(timestamp, now, tolerance_s)
    expected = (_hmac_sha256(s.encode(), timestamp.encode(), b".", body) for s in secrets)
    if not _any_matches(expected, v1):
        raise SignatureError("signature does not match")


# --- GitHub ---------------------------------------------------------------------------------------


def sign_github(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value for ``body``."""
    return "sha256=" + _hmac_sha256(secret.encode(), body).hex()


def verify_github(headers: Mapping[str, str], body: bytes, secrets: Iterable[str]) -> None:
    header = headers.get(GITHUB_HEADER)
    if not header:
        raise SignatureError(f"missing {GITHUB_HEADER} header")
    scheme, sep, value = header.strip().partition("=")
    if not sep or scheme != "sha256":
        raise SignatureError(f"malformed {GITHUB_HEADER} header (needs sha256=<hex>)")
    try:
        given = bytes.fromhex(value)
    except ValueError:
        raise SignatureError(f"malformed {GITHUB_HEADER} header (needs sha256=<hex>)") from None
    if not _any_matches((_hmac_sha256(s.encode(), body) for s in secrets), [given]):
        raise SignatureError("signature does not match")


# --- Standard Webhooks ----------------------------------------------------------------------------


def standard_secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after the optional ``whsec_`` prefix.

    Raises ValueError when it is not base64 (reported as a configuration error).
    """
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret must be base64 (optionally prefixed whsec_)") from None


def sign_standard(secret: str, body: bytes, msg_id: str, timestamp: int) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    key = standard_secret_key(secret)
    digest = _hmac_sha256(key, msg_id.encode(), b".", str(timestamp).encode(), b".", body)
    return {
        STANDARD_ID: msg_id,
        STANDARD_TIMESTAMP: str(timestamp),
        STANDARD_SIGNATURE: "v1," + base64.b64encode(digest).decode(),
    }


def verify_standard(
    headers: Mapping[str, str], body: bytes, keys: Iterable[bytes], *, now: float, tolerance_s: int
) -> None:
    """``keys`` are already decoded with :func:`standard_secret_key`."""
    msg_id = headers.get(STANDARD_ID)
    timestamp = headers.get(STANDARD_TIMESTAMP)
    signature = headers.get(STANDARD_SIGNATURE)
    if not msg_id or not timestamp or not signature:
        raise SignatureError(f"missing {STANDARD_ID}, {STANDARD_TIMESTAMP} or {STANDARD_SIGNATURE} header")
    _check_timestamp(timestamp, now, tolerance_s)
    given: list[bytes] = []
    for item in signature.split():
        version, sep, value = item.partition(",")
        if not sep or version != "v1":
            continue
        try:
            given.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not given:
        raise SignatureError(f"malformed {STANDARD_SIGNATURE} header (needs v1,<base64>)")
    signed = (msg_id.encode(), b".", timestamp.encode(), b".", body)
    if not _any_matches((_hmac_sha256(k, *signed) for k in keys), given):
        raise SignatureError("signature does not match")
