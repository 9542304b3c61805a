"""HttpSink: Danube topics to an HTTP endpoint, one request per record or per batch.

Failure semantics (what the runtime sees from :meth:`HttpSink.process_batch`):

- returns: every record got a success status; the runtime acks them (invariant 1).
- Retryable (with the server's Retry-After, capped): a timeout, a refused connection, 408, 429 or a
  5xx other than 501. Records already delivered in this batch are remembered and not sent again when the
  runtime retries it; the others are resent with the same ``Idempotency-Key``. Never dead-lettered
  (invariant 5); the runtime reports not-ready while it retries.
- InvalidData naming records: the target answered a drop code (default 400, 404, 405, 409, 410, 413, 415,
  422, 501 and other 4xx); the reason carries the status and a body excerpt. The rest of the batch is
  delivered (or, if some of it must still be retried, handed back by the runtime and retried).
  A batch request (json_array / ndjson) refused with a drop code names no record: the runtime resends the
  records one at a time to find the bad ones.
- Fatal: 401/403/407 (credentials) or an unexpected status (1xx, 3xx: redirects are not followed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass

import aiohttp
from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SinkConnector
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.errors import ConfigError, Fatal, InvalidData, Retryable
from danube_connect_core.lifecycle import connector_main
from danube_connect_core.mapping_index import MappingIndex
from danube_connect_core.records import SinkRecord

from danube_sink_http.bodies import Body, batch_body, record_body
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


@dataclass(slots=True)
class _Failures:
    """What went wrong in one process_batch call, collected over its requests."""

    dropped: dict[str, str]
    retry: list[str]
    retry_after: float | None = None

    def note_retry(self, reason: str, after: float | None) -> None:
        self.retry.append(reason)
        if after is not None:
            self.retry_after = max(after, self.retry_after or 0.0)


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
        self._index: MappingIndex[_Route] = MappingIndex()
        #: Message ids delivered by an attempt of the batch the runtime is still retrying (bounded by
        #: the batch size; cleared when the batch completes).
        self._delivered: set[str] = set()
        self._failing: str | None = None

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
            self._index.add(m.topic, m.subscription, route)
        log.info(
            "http sink delivering to %s",
            ", ".join(sorted({f"{r.method} {display_url(r.url)}" for r in self._routes.values()})),
        )

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return [m.consumer_config() for m in self.mappings]

    async def process(self, record: SinkRecord) -> None:
        """A batch of one: see :meth:`process_batch`."""
        await self.process_batch([record])

    async def process_batch(self, records: list[SinkRecord]) -> None:
        """Deliver ``records``; see the module docstring for the failure semantics."""
        failures = _Failures(dropped={}, retry=[])
        todo = [r for r in records if r.message_id not in self._delivered]
        for route, group in self._index.group(todo):
            if route.body_mode == "record":
                await self._send_each(route, group, failures)
            else:
                await self._send_batch(route, group, failures)
        by_id = {r.message_id: r for r in records}
        if failures.retry:
            self._failing = failures.retry[0]
            if failures.dropped:
                # Dead-letter the dropped ones now; the runtime hands the rest back and the
                # undelivered ones are retried (invariant 5: the outage part is not poison).
                bad = [by_id[i] for i in failures.dropped]
                raise InvalidData(failures.dropped[bad[0].message_id], records=bad, reasons=failures.dropped)
            more = f" (and {len(failures.retry) - 1} more)" if len(failures.retry) > 1 else ""
            raise Retryable(failures.retry[0] + more, retry_after=failures.retry_after)
        self._failing = None
        for r in records:
            self._delivered.discard(r.message_id)
        if failures.dropped:
            bad = [by_id[i] for i in failures.dropped]
            raise InvalidData(
                failures.dropped[bad[0].message_id],
                records=bad,
                reasons=failures.dropped,
                others_written=True,
            )

    async def _send_each(self, route: _Route, records: list[SinkRecord], failures: _Failures) -> None:
        assert self.settings is not None
        gate = asyncio.Semaphore(self.settings.max_in_flight)
        bodies: dict[str, Body] = {}
        for record in records:
            try:
                bodies[record.message_id] = record_body(record, route.include_metadata)
            except InvalidData as exc:  # not JSON-writable: dead-letter it, send the rest
                failures.dropped[record.message_id] = exc.reason_for(record)
        records = [r for r in records if r.message_id in bodies]

        async def one(record: SinkRecord) -> None:
            body = bodies[record.message_id]
            async with gate:
                reply = await self._request(route, body, record_key(record.message_id), failures)
            if reply is None:
                return
            if self._judge(route, reply, failures) == "success":
                self._delivered.add(record.message_id)
            elif self.policy.outcome(reply.status) == "drop":
                failures.dropped[record.message_id] = _drop_reason(route, reply)

        await asyncio.gather(*(one(r) for r in records))

    async def _send_batch(self, route: _Route, records: list[SinkRecord], failures: _Failures) -> None:
        try:
            body = batch_body(records, route.body_mode, route.include_metadata)
        except InvalidData as exc:  # not JSON-writable: dead-letter those, send the rest
            for bad in exc.records or []:
                failures.dropped[bad.message_id] = exc.reason_for(bad)
            records = [r for r in records if r.message_id not in failures.dropped]
            if not records:
                return
            body = batch_body(records, route.body_mode, route.include_metadata)
        reply = await self._request(route, body, batch_key([r.message_id for r in records]), failures)
        if reply is None:
            return
        verdict = self._judge(route, reply, failures)
        if verdict == "success":
            self._delivered.update(r.message_id for r in records)
        elif verdict == "drop":
            if len(records) == 1:
                failures.dropped[records[0].message_id] = _drop_reason(route, reply)
            else:
                # The target refused the batch as a whole: let the runtime find the bad records.
                raise InvalidData(f"batch of {len(records)} refused: {_drop_reason(route, reply)}")

    async def _request(self, route: _Route, body: Body, key: str, failures: _Failures) -> Reply | None:
        assert self.sender is not None and self.settings is not None
        try:
            return await self.sender.send(
                route.method, route.url, body, {self.settings.idempotency_header: key}
            )
        except TransportFailure as exc:
            failures.note_retry(str(exc), None)
            return None

    def _judge(self, route: _Route, reply: Reply, failures: _Failures) -> str:
        assert self.settings is not None
        outcome = self.policy.outcome(reply.status)
        if outcome == "retry":
            after = parse_retry_after(reply.retry_after, cap_s=self.settings.max_retry_after_ms / 1000)
            failures.note_retry(f"{route.method} {display_url(route.url)}: HTTP {reply.status}", after)
        elif outcome == "fatal":
            raise Fatal(f"{route.method} {display_url(route.url)} answered HTTP {reply.status}")
        return outcome

    async def health_check(self) -> None:
        """Ready when every target accepts TCP connections and the last delivery did not fail
        transiently (raises Retryable otherwise; drives /ready)."""
        assert self.sender is not None and self.settings is not None
        for url in {r.url for r in self._routes.values()}:
            try:
                await self.sender.probe(url, min(5.0, self.settings.timeout_ms / 1000))
            except (OSError, TimeoutError) as exc:
                raise Retryable(f"{display_url(url)} unreachable: {type(exc).__name__}") from exc
        if self._failing is not None:
            raise Retryable(f"last delivery failed: {self._failing}")

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
