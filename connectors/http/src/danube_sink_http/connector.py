"""HttpSink: Danube topics to an HTTP endpoint, one request per record or per batch.

Failure semantics (what the runtime sees from :meth:`HttpSink.write`), per record of the batch:

- a success status: delivered; the runtime acks it (invariant 1).
- ``batch.retry`` (with the server's Retry-After, capped): a timeout, a refused connection, 408, 429 or a
  5xx other than 501. Only these records are handed back and resent, with the same ``Idempotency-Key``
  (in a batch mode: when the whole request is resent). Never dead-lettered (invariant 5); the runtime
  reports not-ready while it retries.
- ``batch.reject``: the target answered a drop code (default 400, 404, 405, 409, 410, 413, 415, 422, 501
  and other 4xx; the reason carries the status and a body excerpt), or JSON cannot hold the record. A
  batch request (json_array / ndjson) refused with a drop code names no record: the sink resends its
  records one at a time to find the bad ones.
- Fatal (raised): 401/403/407 (credentials) or an unexpected status (1xx, 3xx: redirects are not
  followed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass

import aiohttp
from danube_connect_core import (
    ConfigError,
    ConnectorConfig,
    ConsumerConfig,
    Fatal,
    InvalidData,
    Retryable,
    SinkBatch,
    SinkConnector,
    SinkRecord,
    connector_main,
)

from danube_sink_http.bodies import Body, batch_body, record_body, record_json
from danube_sink_http.idempotency import batch_key, record_key
from danube_sink_http.retry_after import parse_retry_after
from danube_sink_http.sender import HttpSender, Reply, TransportFailure, display_url
from danube_sink_http.settings import BodyMode, HttpSettings, HttpTopicMapping
from danube_sink_http.status_policy import StatusPolicy

__all__ = ["HttpSink", "main"]

log = logging.getLogger("danube_connect.http")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class _Route:
    url: str
    method: str
    body_mode: BodyMode
    include_metadata: bool


class HttpSink(SinkConnector):
    """Sink connector delivering Danube messages to an HTTP endpoint."""

    name = "http"
    config_section = "http"
    settings_model = HttpSettings
    env_overrides = {
        "HTTP_SINK_URL": "url",
        "HTTP_SINK_TOKEN": "token",
        "HTTP_SINK_USERNAME": "username",
        "HTTP_SINK_PASSWORD": "password",
    }

    def __init__(self) -> None:
        self.settings: HttpSettings | None = None
        self.sender: HttpSender | None = None
        self.policy = StatusPolicy([], [])
        self.mappings: list[HttpTopicMapping] = []
        self._routes: dict[tuple[str, str], _Route] = {}

    async def initialize(self, config: ConnectorConfig) -> None:
        """Prepare the client session. The target is not contacted here: an unreachable target makes
        the sink not-ready and its writes retry, it does not stop it."""
        s = config.settings_as(HttpSettings)
        self.settings = s
        headers = {name: _expand(value, name, config) for name, value in s.headers.items()}
        if s.auth == "bearer":
            token = s.secret_token()
            assert token is not None
            headers["Authorization"] = f"Bearer {token}"
        auth = None
        if s.auth == "basic":
            assert s.username is not None
            auth = aiohttp.BasicAuth(s.username, s.secret_password() or "")
        self.sender = HttpSender(
            timeout_s=s.timeout_ms / 1000, max_in_flight=s.max_in_flight, headers=headers, auth=auth
        )
        self.policy = StatusPolicy(s.success_codes, s.drop_codes)
        self.mappings = list(s.topic_mappings)
        for m in self.mappings:
            route = _Route(
                m.url or s.url, m.method or s.method, m.body_mode or s.body_mode, m.include_metadata
            )
            self._routes[(m.topic, m.subscription)] = route
        log.info(
            "http sink delivering to %s",
            ", ".join(sorted({f"{r.method} {display_url(r.url)}" for r in self._routes.values()})),
        )

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return [m.consumer_config(self._routes[(m.topic, m.subscription)]) for m in self.mappings]

    async def write(self, batch: SinkBatch[_Route]) -> None:
        """Deliver the batch; see the module docstring for what is reported per record."""
        route = batch.mapping
        if route.body_mode == "record":
            bodies: list[tuple[SinkRecord, Body]] = []
            for record in batch.records:
                try:
                    bodies.append((record, record_body(record, route.include_metadata)))
                except InvalidData as exc:  # not JSON-writable: reject it, send the rest
                    batch.reject(record, exc.reason)
            await self._send_each(route, bodies, batch)
            return
        docs: list[tuple[SinkRecord, bytes]] = []
        for record in batch.records:
            try:
                docs.append((record, record_json(record, route.include_metadata)))
            except InvalidData as exc:
                batch.reject(record, exc.reason)
        if not docs:
            return
        body = batch_body([d for _, d in docs], route.body_mode)
        key = batch_key([r.message_id for r, _ in docs])
        if not await self._send(route, [r for r, _ in docs], body, key, batch):
            # The target refused the request as a whole: find the bad records, one request each.
            each = [(r, batch_body([d], route.body_mode)) for r, d in docs]
            await self._send_each(route, each, batch)

    async def _send_each(
        self, route: _Route, bodies: list[tuple[SinkRecord, Body]], batch: SinkBatch[_Route]
    ) -> None:
        """One request per record, at most ``max_in_flight`` at once."""
        assert self.settings is not None
        gate = asyncio.Semaphore(self.settings.max_in_flight)
        keyed = record_key if route.body_mode == "record" else (lambda i: batch_key([i]))

        async def one(record: SinkRecord, body: Body) -> None:
            key = keyed(record.message_id)
            async with gate:
                await self._send(route, [record], body, key, batch)

        await asyncio.gather(*(one(r, b) for r, b in bodies))

    async def _send(
        self, route: _Route, records: list[SinkRecord], body: Body, key: str, batch: SinkBatch[_Route]
    ) -> bool:
        """Send one request carrying ``records`` and report its outcome on them. Returns False only when
        a request of several records was refused with a drop code (nothing reported: the caller finds
        the bad ones); raises Fatal on a credentials or unexpected status."""
        assert self.sender is not None and self.settings is not None
        try:
            reply = await self.sender.send(
                route.method, route.url, body, {self.settings.idempotency_header: key}
            )
        except TransportFailure as exc:
            for record in records:
                batch.retry(record, str(exc))
            return True
        outcome = self.policy.outcome(reply.status)
        where = f"{route.method} {display_url(route.url)}"
        if outcome == "retry":
            after = parse_retry_after(reply.retry_after, cap_s=self.settings.max_retry_after_ms / 1000)
            for record in records:
                batch.retry(record, f"{where}: HTTP {reply.status}", retry_after=after)
        elif outcome == "fatal":
            raise Fatal(f"{where} answered HTTP {reply.status}")
        elif outcome == "drop":
            if len(records) > 1:
                return False
            batch.reject(records[0], _drop_reason(route, reply))
        return True

    async def health_check(self) -> None:
        """Ready when every target accepts TCP connections (raises Retryable otherwise; drives /ready;
        the runtime also reports not-ready while it retries a delivery)."""
        assert self.sender is not None and self.settings is not None
        for url in {r.url for r in self._routes.values()}:
            try:
                await self.sender.probe(url, min(5.0, self.settings.timeout_ms / 1000))
            except (OSError, TimeoutError) as exc:
                raise Retryable(f"{display_url(url)} unreachable: {type(exc).__name__}") from exc

    async def shutdown(self) -> None:
        if self.sender is not None:
            await self.sender.close()
            self.sender = None


def _drop_reason(route: _Route, reply: Reply) -> str:
    excerpt = " ".join(reply.excerpt.split())[:300]
    return f"{route.method} {display_url(route.url)} answered HTTP {reply.status}: {excerpt}"


def _expand(value: str, header: str, config: ConnectorConfig) -> str:
    """Replace ``${NAME}`` with the environment variable's value (ConfigError naming it when unset)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(
                f"environment variable {name} is not set",
                file=config.source_file,
                key=f"http.headers.{header}",
            )
        return found

    return _ENV_REF.sub(sub, value)


def main() -> None:
    """Console script ``danube-sink-http [--config FILE] [--check]``."""
    connector_main(HttpSink)
