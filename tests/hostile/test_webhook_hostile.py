"""Hostile HTTP input against the webhook source (invariants 3 and 4): every request gets one of the
documented 4xx answers or a 2xx, never a 5xx, the process keeps serving, and the topic holds exactly the
events answered 2xx, each valid against the topic's JSON Schema.

One connector runs in this event loop against the in-process embedded broker (as the connector's own
tests do); a Shared subscription opened before the first request reads the topic back at the end.
Requests come from three places: hypothesis (methods, paths, headers, content types, bodies of every
encoding), a fixed list of known-nasty bodies (depth bombs, huge numbers, broken UTF-8), and raw sockets
for what an HTTP client library refuses to send (conflicting framing headers, slow bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import jsonschema_rs
import orjson
import pytest
import pytest_asyncio
from danube_connect_core.testing import make_config, start_runtime
from danube_connect_core.testing.topic_reader import topic_reader
from hypothesis import strategies as st
from multidict import CIMultiDict

from .hostile_support import (
    PAYMENT_SCHEMA,
    RawAnswer,
    collect,
    payment,
    payment_schema,
    raw_request,
    read_answer,
)

danube_source_webhook = pytest.importorskip("danube_source_webhook")

TOPIC = "/default/hostile-webhook"
PATH = "/hostile"
LIMIT = 256 * 1024  # large enough for the 100k-deep array bomb to reach the JSON parser
TIMEOUT_MS = 2_000
API_KEY = "hostile-api-key-5d1f0c"
#: README "Answers": the statuses a request that is not a broker outage may get.
DOCUMENTED_4XX = {400, 401, 404, 405, 408, 413, 415, 422, 429}
ACCEPTED = {200, 202}
VALIDATOR = jsonschema_rs.validator_for(orjson.loads(PAYMENT_SCHEMA.read_bytes()))


# -- the oracle: what the README says each request must get ------------------------------------------


def is_json_media(value: str) -> bool:
    """README: ``application/json`` or ``application/*+json``, no charset or charset UTF-8."""
    media, _, params = value.partition(";")
    kind, _, sub = media.strip().lower().partition("/")
    if kind != "application" or not (sub == "json" or sub.endswith("+json")):
        return False
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def is_form_media(value: str) -> bool:
    """README: ``application/x-www-form-urlencoded`` (GitHub's form deliveries), whatever its parameters."""
    return value.partition(";")[0].strip().lower() == "application/x-www-form-urlencoded"


def form_payload(body: bytes) -> bytes | None:
    """README: a form body holds exactly one field, ``payload=<JSON>``; None otherwise (400)."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("payload")
    if set(fields) != {"payload"} or values is None or len(values) != 1:
        return None
    return values[0].encode()


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    content_type: str | None
    api_key: str | None
    body: bytes
    extra: tuple[tuple[str, str], ...] = ()

    def expected(self) -> int:
        if self.path != PATH:
            return 404
        if self.method != "POST":
            return 405
        if len(self.body) > LIMIT:
            return 413
        form = self.content_type is not None and is_form_media(self.content_type)
        if self.content_type is None or not (form or is_json_media(self.content_type)):
            return 415
        # HTTP strips a field value's surrounding whitespace (RFC 9110 5.5): "key " is the key
        if self.api_key is None or self.api_key.strip(" \t") != API_KEY:
            return 401
        body = form_payload(self.body) if form else self.body
        if body is None:
            return 400
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400
        return 200 if VALIDATOR.is_valid(value) else 422

    def headers(self) -> CIMultiDict[str]:
        h: CIMultiDict[str] = CIMultiDict(self.extra)
        if self.content_type is not None:
            h["Content-Type"] = self.content_type
        if self.api_key is not None:
            h["x-api-key"] = self.api_key
        return h


# -- strategies ------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
payment_like = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["payment.succeeded", "payment.refunded", "nope"]) | scalars,
        "amount": st.integers(min_value=-3, max_value=2**63 - 1) | scalars,
        "currency": st.sampled_from(["USD", "EUR", "eur", "EURO"]) | scalars,
        "timestamp": st.integers(min_value=0, max_value=2**40) | scalars,
        "extra": json_values,
    },
)
valid = st.integers(min_value=0, max_value=10**6).map(lambda i: orjson.dumps(payment(i)))


def _encodings(doc: bytes) -> st.SearchStrategy[bytes]:
    text = doc.decode()
    return st.sampled_from(
        [
            doc,
            text.encode("utf-16"),
            text.encode("utf-32-le"),
            b"\xef\xbb\xbf" + doc,  # BOM
            doc[: max(1, len(doc) // 2)],  # truncated
            doc.replace(b'"', b"'"),
            doc + b"\x00",
            doc + b" garbage",
        ]
    )


bodies = st.one_of(
    valid,
    payment_like.map(orjson.dumps),
    json_values.map(orjson.dumps),
    st.binary(max_size=300),
    st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
    valid.flatmap(_encodings),
    st.integers(min_value=1, max_value=40).map(lambda n: b"[" * n * 30 + b"]" * n * 30),
    st.sampled_from([b"1e400", b"-1e999", b"NaN", b"Infinity", b'"\\ud800"', b'{"a":"\\u0000"}']),
)
GOOD_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    'application/json; charset="UTF-8"',
    "application/vnd.stripe+json",
    "APPLICATION/JSON",
]
BAD_TYPES = [
    "text/plain",
    "application/xml",
    "application/json; charset=utf-16",
    "application/json; charset=latin-1",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "json",
    "",
    "application/",
    "/json",
]
header_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789_", min_size=1, max_size=20)
header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
RESERVED = {
    "content-type",
    "content-length",
    "transfer-encoding",
    "x-api-key",
    "host",
    "connection",
    "expect",
}
extra_headers = st.lists(
    st.tuples(header_token.filter(lambda n: n not in RESERVED), header_value)
    | st.tuples(st.just("X-Request-Id"), header_value),
    max_size=6,
)
requests = st.builds(
    Req,
    method=st.sampled_from(["POST"] * 8 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=st.sampled_from([PATH] * 10 + ["/", "/hostile/", "/HOSTILE", "/hostile/../hostile2", "/x" * 40]),
    content_type=st.sampled_from(GOOD_TYPES * 3 + BAD_TYPES) | st.none() | header_value,
    api_key=st.sampled_from([API_KEY] * 6 + ["", "wrong", API_KEY + " ", API_KEY.upper()]) | st.none(),
    body=bodies,
    extra=extra_headers.map(tuple),
)

#: Known-nasty bodies, every one with good headers: (name, body, expected status).
NASTY: list[tuple[str, bytes, int]] = [
    ("array depth bomb 100k", b"[" * 100_000 + b"]" * 100_000, 400),
    ("unclosed array depth bomb 100k", b"[" * 100_000, 400),
    ("object depth bomb 30k", b'{"a":' * 30_000 + b"1" + b"}" * 30_000, 400),
    (
        "depth bomb inside a payment",
        orjson.dumps(payment(1))[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        400,
    ),
    ("amount 1e400", orjson.dumps(payment(2)).replace(b'"amount":102', b'"amount":1e400'), 400),
    ("amount -1e400", orjson.dumps(payment(3)).replace(b'"amount":103', b'"amount":-1e400'), 400),
    (
        "amount with 5001 digits",
        orjson.dumps(payment(4)).replace(b'"amount":104', b'"amount":1' + b"0" * 5000),
        400,
    ),
    ("bare 10**5000", b"1" + b"0" * 5000, 400),
    (
        "invalid UTF-8 in a string",
        b'{"event":"payment.succeeded\xff","amount":1,"currency":"USD","timestamp":1}',
        400,
    ),
    ("UTF-8 encoded surrogate", b'{"event":"\xed\xa0\x80","amount":1,"currency":"USD","timestamp":1}', 400),
    ("overlong UTF-8", b'{"event":"\xc0\xaf","amount":1,"currency":"USD","timestamp":1}', 400),
    ("escaped lone surrogate", b'{"event":"\\udc00","amount":1,"currency":"USD","timestamp":1}', 400),
    ("UTF-16 payment", json.dumps(payment(5)).encode("utf-16"), 400),
    ("BOM payment", b"\xef\xbb\xbf" + orjson.dumps(payment(6)), 400),
    ("NaN amount", b'{"event":"payment.succeeded","amount":NaN,"currency":"USD","timestamp":1}', 400),
    ("empty body", b"", 400),
    ("whitespace only", b" \r\n\t ", 400),
    ("two documents", orjson.dumps(payment(7)) + orjson.dumps(payment(8)), 400),
    ("over the limit", b"[" + b"1," * (LIMIT // 2) + b"1]", 413),
    ("amount a float", orjson.dumps(payment(9, amount=1.5)), 422),
    (
        "amount u64 max (exact)",
        orjson.dumps(payment(10)).replace(b'"amount":110', b'"amount":18446744073709551615'),
        200,
    ),
    (
        "duplicate keys, last wins",
        b'{"event":"payment.succeeded","amount":-1,"amount":7,"currency":"USD","timestamp":1}',
        200,
    ),
    ("NUL escaped in a string", orjson.dumps(payment(11, note="a\u0000b")), 200),
]


# -- fixtures --------------------------------------------------------------------------------------


@dataclass
class Hook:
    port: int
    session: aiohttp.ClientSession
    answers: list[tuple[str, int, bytes]]  # (what, status, body) of everything sent
    metrics_port: int = 0  # the core's /health, /ready and /metrics

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def send(self, what: str, req: Req) -> int:
        async with self.session.request(
            req.method, self.base + req.path, data=req.body, headers=req.headers()
        ) as resp:
            body = await resp.read()
        self.answers.append((what, resp.status, body))
        return resp.status

    def record_raw(self, what: str, answer: RawAnswer) -> None:
        if answer.status is not None:
            self.answers.append((what, answer.status, answer.body))


@pytest_asyncio.fixture
async def hook(broker: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hook]:
    monkeypatch.setenv("WEBHOOK_API_KEY", API_KEY)
    settings = danube_source_webhook.WebhookSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": 0,
            "max_body_bytes": LIMIT,
            "request_timeout_ms": TIMEOUT_MS,
            "endpoints": [{"path": PATH, "danube_topic": TOPIC, "reliable_dispatch": True}],
        }
    )
    config = make_config(
        broker.url,
        "hostile-webhook",
        settings,
        schemas=[payment_schema(TOPIC, "hostile-payment")],
        retry={"max_retries": 1, "retry_backoff_ms": 50, "max_backoff_ms": 200},
    )
    connector = danube_source_webhook.WebhookSource()
    running = await start_runtime(connector, config)
    async with asyncio.timeout(30):
        while connector.server is None or connector.server.sender is None:
            assert not running.task.done(), "the webhook runtime ended during start-up"
            await asyncio.sleep(0.01)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        yield Hook(connector.port, session, [], running.port)
    finally:
        await session.close()
        if not running.task.done():
            assert await running.stop() == 0


def _slow_headers() -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"x-api-key: {API_KEY}\r\nContent-Length: 400\r\n\r\n"
    ).encode()


async def _trickle(port: int, head: bytes, body: bytes, every: float) -> RawAnswer:
    """Send the head at once, then the body one byte per ``every`` seconds until the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        answer = asyncio.ensure_future(read_answer(reader, within=60))
        for byte in body:
            if answer.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
                await writer.drain()
            await asyncio.wait({answer}, timeout=every)
        return await answer
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# -- the test --------------------------------------------------------------------------------------


async def test_hostile_requests_get_documented_answers_and_only_valid_events_reach_danube(
    broker: Any, hook: Hook
) -> None:
    async with topic_reader(broker.url, TOPIC, "hostile-reader") as reader:
        good = {"Content-Type": "application/json", "x-api-key": API_KEY}

        # 1. hypothesis-generated requests: exactly the status the README's rules give
        for i, req in enumerate(collect(requests, 160)):
            status = await hook.send(f"generated #{i}", req)
            assert status == req.expected(), (req, hook.answers[-1])

        # 2. known-nasty bodies with good headers
        for name, body, want in NASTY:
            req = Req("POST", PATH, "application/json", API_KEY, body)
            assert req.expected() == want, name  # the oracle agrees with the list
            assert await hook.send(name, req) == want, hook.answers[-1]

        # 3. a body streamed chunked (no Content-Length) past the limit: 413 while it streams
        async def chunks() -> AsyncIterator[bytes]:
            yield b"["
            for _ in range(LIMIT // 1024 + 8):
                yield b"1," * 512

        async with hook.session.post(hook.base + PATH, data=chunks(), headers=good) as resp:
            hook.answers.append(("chunked over the limit", resp.status, await resp.read()))
            assert resp.status == 413

        # 4. conflicting or duplicate Content-Type headers: a refusal or the first one wins; never a 5xx
        for types in (
            ("application/json", "text/plain"),
            ("text/plain", "application/json"),
            ("application/json", "application/json"),
        ):
            h = CIMultiDict([("Content-Type", t) for t in types] + [("x-api-key", API_KEY)])
            async with hook.session.post(hook.base + PATH, data=orjson.dumps(payment(50)), headers=h) as resp:
                hook.answers.append((f"content types {types}", resp.status, await resp.read()))
                assert resp.status in ACCEPTED | {400, 415}, types

        # 5. what a client library will not send: raw bytes on a socket
        raw_cases: list[tuple[str, bytes, set[int | None]]] = [
            ("garbage request line", b"GARBAGE\r\n\r\n", {400, None}),
            ("NUL in the path", b"POST /hos\x00tile HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404, None}),
            (
                "unknown method",
                f"BREW {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode(),
                {400, 405},
            ),
            (
                "Content-Length and Transfer-Encoding together",
                _raw_post(b'{"a":1}', "Content-Length: 7\r\nTransfer-Encoding: chunked\r\n"),
                {400, None},
            ),
            ("negative Content-Length", _raw_post(b"", "Content-Length: -1\r\n"), {400, None}),
            ("non-numeric Content-Length", _raw_post(b"", "Content-Length: abc\r\n"), {400, None}),
            (
                "two Content-Lengths",
                _raw_post(b"{}", "Content-Length: 2\r\nContent-Length: 3\r\n"),
                {400, None},
            ),
            (
                "declared length over the limit, no body sent",
                _raw_post(b"", f"Content-Length: {LIMIT + 1}\r\n"),
                {413},
            ),
            (
                "bad chunk size",
                _raw_post(b"zz\r\n{}\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n"),
                {400, None},
            ),
            (
                "header line of 64 KiB",
                _raw_post(b"{}", "Content-Length: 2\r\nX-Big: " + "a" * 65536 + "\r\n"),
                {400, 413, None},
            ),
            (
                "body shorter than Content-Length (then silence)",
                _raw_post(b'{"event"', "Content-Length: 100\r\n"),
                {408},
            ),
        ]
        for name, data, allowed in raw_cases:
            answer = await raw_request(hook.port, data, within=TIMEOUT_MS / 1000 + 30)
            hook.record_raw(name, answer)
            assert answer.status in allowed, (name, answer)

        # 6. slowloris: a few connections trickle their bodies; they time out (408) while a normal
        #    request is answered meanwhile
        slow_body = orjson.dumps(payment(60)).ljust(400)
        slow = [
            asyncio.ensure_future(_trickle(hook.port, _slow_headers(), slow_body, every=0.2))
            for _ in range(4)
        ]
        await asyncio.sleep(0.3)  # they are connected and trickling
        normal = Req("POST", PATH, "application/json", API_KEY, orjson.dumps(payment(61)))
        assert await hook.send("normal request during slowloris", normal) == 200
        assert not all(t.done() for t in slow), "the slow connections finished before the normal request"
        for answer in await asyncio.gather(*slow):
            hook.record_raw("slowloris", answer)
            assert answer.status == 408, answer

        # the process still serves: health and a final marker event
        async with hook.session.get(f"http://127.0.0.1:{hook.metrics_port}/health") as resp:
            assert resp.status == 200
        marker = Req("POST", PATH, "application/json", API_KEY, orjson.dumps(payment(99, marker="end")))
        assert await hook.send("marker", marker) == 200

        # 7. never a 5xx; every answer is documented and JSON with an error code (aiohttp's own parser
        #    refusals before routing are plain 400s)
        for what, status, body in hook.answers:
            assert status in ACCEPTED | DOCUMENTED_4XX, (what, status, body)
            if status in DOCUMENTED_4XX and body.startswith(b"{"):
                assert "error" in orjson.loads(body), (what, body)

        # 8. the topic holds exactly the 2xx events, each one valid against the schema
        accepted = sum(1 for _, status, _ in hook.answers if status in ACCEPTED)
        await reader.until(lambda msgs: any(b'"marker"' in m.payload for m in msgs))
        assert len(reader.messages) == accepted
        for message in reader.messages:
            assert VALIDATOR.is_valid(orjson.loads(message.payload)), message.payload
        # nothing more arrives after the marker (a late extra record would break the count)
        with contextlib.suppress(TimeoutError):
            await reader.until(lambda msgs: len(msgs) > accepted, within=1.0)
        assert len(reader.messages) == accepted


def _raw_post(body: bytes, framing: str) -> bytes:
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-api-key: {API_KEY}\r\n"
    return (head + framing + "\r\n").encode() + body


async def test_accepted_events_reach_danube_with_the_numbers_the_sender_sent(broker: Any, hook: Hook) -> None:
    async with topic_reader(broker.url, TOPIC, "precision-reader") as reader:
        sent = [
            b'{"event":"payment.succeeded","amount":100000000000000000001,"currency":"USD","timestamp":1}',
            b'{"event":"payment.succeeded","amount":1,"currency":"USD","timestamp":-9223372036854775809}',
        ]
        accepted = []
        for body in sent:
            status = await hook.send("big integer", Req("POST", PATH, "application/json", API_KEY, body))
            assert status in ACCEPTED | {400, 422}  # a refusal would also be honest
            if status in ACCEPTED:
                accepted.append(body)
        await reader.until(lambda msgs: len(msgs) >= len(accepted))
        # compare with exact (arbitrary precision) parsing
        assert [json.loads(m.payload) for m in reader.messages] == [json.loads(b) for b in accepted]


async def _trickle_head(port: int, seconds: float, every: float = 0.1) -> RawAnswer | None:
    """Trickle a never-ending header block for ``seconds``; the answer if the server gave one (or closed
    the connection: status None), else None when it was still waiting for headers at the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        await writer.drain()
        answer = asyncio.ensure_future(read_answer(reader, within=seconds + 30))
        for _ in range(int(seconds / every)):
            if answer.done():
                return await answer
            with contextlib.suppress(ConnectionError):
                writer.write(b"a")
                await writer.drain()
            await asyncio.wait({answer}, timeout=every)
        if answer.done():
            return await answer
        answer.cancel()
        return None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def test_slow_header_connections_do_not_block_a_normal_request(hook: Hook) -> None:
    slow = [asyncio.ensure_future(_trickle_head(hook.port, seconds=3 * TIMEOUT_MS / 1000)) for _ in range(4)]
    await asyncio.sleep(0.3)
    normal = Req("POST", PATH, "application/json", API_KEY, orjson.dumps(payment(1)))
    assert await hook.send("normal request during slow headers", normal) == 200
    results = await asyncio.gather(*slow)
    # whatever the server did with them, it was not a 5xx
    assert all(r is None or r.status in {None, 400, 408} for r in results), results


async def test_slow_header_connections_are_timed_out(hook: Hook) -> None:
    """A connection that never completes its request head is closed (request_timeout_ms bounds the head
    too: the server's keep-alive timer runs from the connection's opening), not held open forever."""
    result = await _trickle_head(hook.port, seconds=3 * TIMEOUT_MS / 1000)
    assert result is not None, "the server was still reading headers after 3 x request_timeout_ms"
