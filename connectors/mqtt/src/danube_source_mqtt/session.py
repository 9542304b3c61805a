"""Keep one MQTT connection up: connect, subscribe, reconnect with backoff, resubscribe every time.

Every (re)connection subscribes to all mapped filters again, whatever the broker says about a resumed
session: a clean session has lost them, and a changed configuration may have added some. With MQTT 5
each mapping's subscription carries its subscription identifier (see router.py), so a copy of a message
says which subscription it was sent for. With MQTT 5
retained messages are not re-sent for subscriptions that already exist (retain handling 1); with 3.1.1 a
resubscribe makes the broker send retained messages again (they carry ``mqtt.retain = true``).

A connection refused for good (bad credentials, not authorised, subscription refused) is fatal; anything
else (broker down, network, timeouts) is retried forever with exponential backoff and jitter while the
connector reports not-ready (invariant 5: an outage is not poison). Every change of the connection is
reported through ``on_state(connected, detail)`` (the connector passes ``RuntimeContext.set_ready``, so
the core's /ready follows the MQTT connection at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from danube_connect_core import Fatal
from danube_connect_core.resilience import equal_jitter

from danube_source_mqtt.connection import ConnectFailed, MqttConnection, Subscription
from danube_source_mqtt.intake import Intake
from danube_source_mqtt.settings import MqttSettings

__all__ = ["MqttSession"]

log = logging.getLogger("danube_connect.mqtt")


class MqttSession:
    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        intake: Intake,
        tls: ssl.SSLContext | None,
        identifiers: list[int] | None = None,
        on_state: Callable[[bool, str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._intake = intake
        self._tls = tls
        # MQTT 5: each mapping subscribes with its own subscription identifier (see router.py).
        idents: list[int | None] = [None] * len(settings.topic_mappings)
        if identifiers:
            idents = list(identifiers)
        self._subscriptions = [
            Subscription(m.mqtt_topic, m.qos, ident)
            for m, ident in zip(settings.topic_mappings, idents, strict=True)
        ]
        self._connection: MqttConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.first_attempt = asyncio.Event()
        self._on_state = on_state
        self.connected = False
        self.detail = "not connected yet"
        self._report()
        self.fatal: Exception | None = None
        self.connections = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-session")

    async def _run(self) -> None:
        s = self._settings
        failures = 0
        where = f"{s.broker_host}:{s.broker_port}"
        while not self._stopping.is_set():
            conn = MqttConnection(s, self._client_id, self._intake.on_message, self._tls)
            self._connection = conn
            try:
                session_present = await conn.connect()
                self._intake.attach(conn)
                await conn.subscribe(self._subscriptions)
                self.connections += 1
                self.connected = True
                self.detail = f"connected to {where}"
                self._report()
                failures = 0
                log.info(
                    "MQTT connected to %s as %s (session resumed: %s), subscribed to %s",
                    where,
                    self._client_id,
                    session_present,
                    ", ".join(sub.filter for sub in self._subscriptions),
                )
                self.first_attempt.set()
                reason = await conn.wait_closed()
                if not self._stopping.is_set():
                    log.warning("MQTT connection to %s lost: %s", where, reason)
                    self.detail = f"connection lost: {reason}"
            except Fatal as exc:
                self.fatal = exc
                self.detail = str(exc)
                log.error("MQTT: %s", exc)
                conn.abort()
                return
            except (ConnectFailed, TimeoutError) as exc:
                self.detail = str(exc) or type(exc).__name__
                log.warning("MQTT: %s", self.detail)
            finally:
                self.connected = False
                self._report()
                if not self._stopping.is_set() and not conn.closed:
                    conn.abort()
                self._intake.detach(conn)
                self.first_attempt.set()
            if self._stopping.is_set():
                return
            delay = self._backoff(failures)
            failures += 1
            log.info("MQTT: reconnecting to %s in %.2fs", where, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _report(self) -> None:
        if self._on_state is not None:
            self._on_state(self.connected, f"MQTT: {self.detail}")

    def _backoff(self, failures: int) -> float:
        s = self._settings
        return equal_jitter(failures, s.reconnect_min_delay_ms / 1000, s.reconnect_max_delay_ms / 1000)

    async def stop(self, within: float = 5.0) -> None:
        """Disconnect cleanly (queued acks are written before DISCONNECT) and stop reconnecting."""
        self._stopping.set()
        conn = self._connection
        if conn is not None and not conn.closed:
            await conn.disconnect(within)
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), within)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
