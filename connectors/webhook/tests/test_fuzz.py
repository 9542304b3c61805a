"""Property-based check of the HTTP surface: arbitrary bodies and content types get exactly the status the
rules say (never a 5xx), and the topic holds exactly the bodies that were answered 2xx.

Hypothesis generates the requests (a sync @given collects them); they are then sent to one running
connector, since each example does not need a fresh one.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .webhook_testsupport import PAYMENT_SCHEMA, OpenReader, StartWebhook, payment, payment_schema

TOPIC = "/default/fuzz"
PATH = "/fuzz"
LIMIT = 512
GOOD_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.stripe+json",
    "APPLICATION/JSON",
)
BAD_TYPES = ("text/plain", "application/xml", "application/json; charset=utf-16", "multipart/form-data")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
payment_like = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["payment.succeeded", "payment.failed", "payment.refunded", "bogus"])
        | scalars,
        "amount": st.integers(min_value=-5, max_value=10**6) | scalars,
        "currency": st.sampled_from(["USD", "EUR", "usd", "EURO"]) | scalars,
        "timestamp": st.integers(min_value=0, max_value=2**40) | scalars,
        "extra": json_values,
    },
)
valid_payments = st.builds(lambda i: payment(i), st.integers(min_value=0, max_value=10**6))
bodies = st.one_of(
    st.binary(max_size=LIMIT + 64),
    json_values.map(orjson.dumps),
    payment_like.map(orjson.dumps),
    valid_payments.map(orjson.dumps),
)
content_types = st.sampled_from(GOOD_TYPES + BAD_TYPES)


def collect_examples(n: int) -> list[tuple[bytes, str]]:
    out: list[tuple[bytes, str]] = []

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, ctype=content_types | st.sampled_from(GOOD_TYPES))
    def collect(body: bytes, ctype: str) -> None:
        out.append((body, ctype))

    collect()
    return out


def expected_status(body: bytes, ctype: str, validator: Any) -> int:
    if ctype not in GOOD_TYPES:
        return 415
    if len(body) > LIMIT:
        return 413
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 400
    return 200 if validator.is_valid(value) else 422


async def test_arbitrary_requests_get_the_documented_status(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader
) -> None:
    examples = collect_examples(150)
    validator = jsonschema_rs.validator_for(orjson.loads(PAYMENT_SCHEMA.read_bytes()))
    hook = await start_webhook(
        broker.url,
        {
            "max_body_bytes": LIMIT,
            "endpoints": [{"path": PATH, "danube_topic": TOPIC, "reliable_dispatch": True}],
        },
        schemas=[payment_schema(TOPIC, "fuzz-payment")],
    )
    reader = await open_reader(broker.url, TOPIC)
    accepted: list[Any] = []
    for body, ctype in examples:
        status, answer, _ = await hook.post(PATH, body, headers={"Content-Type": ctype})
        want = expected_status(body, ctype, validator)
        assert status == want, (body, ctype, answer)
        assert "error" in answer if status != 200 else answer["status"] == "accepted"
        if status == 200:
            accepted.append(orjson.loads(body))
    status, _, _ = await hook.post(PATH, payment(0, marker=True))
    assert status == 200
    await reader.until(lambda msgs: any(b'"marker"' in m.payload for m in msgs))
    assert reader.payloads() == [*accepted, payment(0, marker=True)]
    assert any(expected_status(b, c, validator) == 200 for b, c in examples)
