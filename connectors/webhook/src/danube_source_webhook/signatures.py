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
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "SignatureError",
    "sign_github",
    "sign_standard",
    "sign_stripe",
    "standard_headers",
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
#: Svix (the reference implementation of Standard Webhooks) sends the same scheme under its own names.
SVIX_ID = "svix-id"
SVIX_TIMESTAMP = "svix-timestamp"
SVIX_SIGNATURE = "svix-signature"

#: A hex digest as the providers' own libraries compare it: they compare the lower-case hex string, so an
#: upper-case digest is refused by them and by us.
_LOWER_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


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
        elif name == "v1" and _LOWER_HEX_SHA256.fullmatch(value):
            v1.append(bytes.fromhex(value))
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
    if not sep or scheme != "sha256" or not _LOWER_HEX_SHA256.fullmatch(value):
        raise SignatureError(f"malformed {GITHUB_HEADER} header (needs sha256=<64 lower-case hex digits>)")
    given = bytes.fromhex(value)
    if not _any_matches((_hmac_sha256(s.encode(), body) for s in secrets), [given]):
        raise SignatureError("signature does not match")


# --- Standard Webhooks ----------------------------------------------------------------------------


def standard_secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after the optional ``whsec_`` prefix, with or
    without its ``=`` padding (providers show it either way).

    Raises ValueError when it is not base64 (reported as a configuration error).
    """
    encoded = secret.removeprefix("whsec_").rstrip("=")
    encoded += "=" * (-len(encoded) % 4)
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


def standard_headers(headers: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """Message id, timestamp and signature of a Standard Webhooks delivery: the ``webhook-*`` headers, or
    Svix's ``svix-*`` names of the same three when no ``webhook-id`` is present."""
    if headers.get(STANDARD_ID) is None and headers.get(SVIX_ID) is not None:
        return headers.get(SVIX_ID), headers.get(SVIX_TIMESTAMP), headers.get(SVIX_SIGNATURE)
    return headers.get(STANDARD_ID), headers.get(STANDARD_TIMESTAMP), headers.get(STANDARD_SIGNATURE)


def verify_standard(
    headers: Mapping[str, str], body: bytes, keys: Iterable[bytes], *, now: float, tolerance_s: int
) -> None:
    """``keys`` are already decoded with :func:`standard_secret_key`. Accepts the ``webhook-*`` and the
    ``svix-*`` header names."""
    msg_id, timestamp, signature = standard_headers(headers)
    if not msg_id or not timestamp or not signature:
        raise SignatureError(
            f"missing {STANDARD_ID}, {STANDARD_TIMESTAMP} or {STANDARD_SIGNATURE} header"
            f" (or {SVIX_ID}, {SVIX_TIMESTAMP}, {SVIX_SIGNATURE})"
        )
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
