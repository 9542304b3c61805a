"""A compressed body is held to ``max_body_bytes`` after decompression (aiohttp inflates ``Content-Encoding:
gzip``/``deflate`` bodies while they are read): a small body that inflates past an endpoint's limit is a
413 ``payload_too_large`` (never an internal error), and one that stays within it is accepted as the
inflated JSON."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson

from .webhook_testsupport import API_KEY, OpenReader, StartWebhook

PATH = "/webhooks/compressed"
LIMIT = 2048
TOPIC = "/default/webhook-compressed"


async def test_compressed_bodies_are_limited_after_decompression(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader
) -> None:
    hook = await start_webhook(
        broker.url,
        {
            "max_body_bytes": LIMIT,
            "endpoints": [{"path": PATH, "danube_topic": TOPIC, "reliable_dispatch": True}],
        },
    )
    reader = await open_reader(broker.url, TOPIC)
    headers = {"Content-Type": "application/json", "x-api-key": API_KEY}
    # ~1 MB of JSON that compresses to a few KB: declared length within the limit, inflated far past it
    bomb = orjson.dumps({"pad": "x" * 1024 * 1024})
    for name, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        body = compress(bomb)
        assert len(body) < LIMIT
        status, answer, _ = await hook.request(
            "POST", PATH, data=body, headers={**headers, "Content-Encoding": name}
        )
        assert status == 413 and answer["error"] == "payload_too_large", (name, answer)
    status, answer, _ = await hook.request(
        "POST",
        PATH,
        data=gzip.compress(orjson.dumps({"seq": "end"})),
        headers={**headers, "Content-Encoding": "gzip"},
    )
    assert status == 200, answer
    await reader.until(lambda msgs: any(b'"end"' in m.payload for m in msgs))
    assert reader.payloads() == [{"seq": "end"}]
