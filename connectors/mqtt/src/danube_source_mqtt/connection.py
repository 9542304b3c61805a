"""One MQTT connection driven on the asyncio event loop (paho-mqtt's external-loop API).

paho does the protocol; this class wires its socket to the event loop (reader, writer, the keep-alive
timer), turns CONNACK/SUBACK/DISCONNECT into awaitables, and can stop reading from the socket
(:meth:`pause_reading`): that is how the connector stops MQTT intake when too many publishes are pending
(invariant 3; the broker then holds the messages, TCP flow control does the rest).

A connection is used once: after it closed, the connector creates a new one. Acknowledgements are bound
to the connection that received the message (packet ids mean nothing on another connection).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from danube_connect_core import Fatal
from paho.mqtt import client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from danube_source_mqtt.paho_client import ManualAckClient
from danube_source_mqtt.settings import MqttSettings
from danube_source_mqtt.tls_errors import tls_refusal

__all__ = ["ConnectFailed", "ConnectionClosed", "MqttConnection", "build_tls_context"]

log = logging.getLogger("danube_connect.mqtt")

#: CONNACK reason codes that no retry will fix: bad credentials, not authorised, banned, bad client id,
#: unsupported protocol version, bad authentication method.
_FATAL_CONNACK = {0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C}


class ConnectFailed(Exception):
    """The connection attempt failed for a reason a later attempt may not have (retry with backoff)."""


class ConnectionClosed(Exception):
    """The connection closed while waiting for the broker."""


@dataclass(frozen=True, slots=True)
class Subscription:
    filter: str
    qos: int
    #: MQTT 5 subscription identifier (one per mapping, see router.py); None: none sent.
    identifier: int | None = None


def build_tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context of ``[mqtt.tls]`` (None when TLS is off). File problems raise OSError/SSLError."""
    tls = settings.tls
    if tls is None or not tls.enabled:
        return None
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None and tls.key_file is not None:
        password = tls.key_password.get_secret_value() if tls.key_password is not None else None
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file), password)
    if tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class MqttConnection:
    """One connection to the MQTT broker. ``on_message(connection, message)`` runs on the event loop."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        on_message: Callable[[MqttConnection, mqtt.MQTTMessage], None],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        v5 = settings.protocol == "5"
        self.v5 = v5
        self._client = ManualAckClient(
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else settings.clean_session,
        )
        self._client.suppress_exceptions = True  # a bug in on_message must not break the read loop
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password_value)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._on_message = on_message
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_message = self._handle_message
        self._client.on_socket_open = self._socket_open
        self._client.on_socket_close = self._socket_close
        self._client.on_socket_register_write = self._register_write
        self._client.on_socket_unregister_write = self._unregister_write
        self._connack: asyncio.Future[tuple[ReasonCode, bool]] = self._loop.create_future()
        self._closed: asyncio.Future[str] = self._loop.create_future()
        self._suback: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._sock: Any = None
        self._reading = False
        self._paused = False
        #: While waiting for SUBACK the socket is read even when intake is paused: the SUBACK sits behind
        #: the messages a resumed session delivers at once (bounded for QoS 1/2 by the broker's in-flight
        #: window; MQTT 5: Receive Maximum = max_pending_messages). Pausing here would never read the
        #: SUBACK: the attempt timed out after connect_timeout_s and the connection was dropped.
        self._subscribing = False
        self.subscription_identifiers_available = True
        self._misc: asyncio.Task[None] | None = None
        self.session_present = False

    # -- lifecycle -------------------------------------------------------------------------------------

    async def connect(self) -> bool:
        """Open the connection; returns whether the broker resumed a session (``session_present``).

        Raises ConnectFailed (network, timeout, refusals worth retrying) or Fatal (credentials, protocol).
        """
        s = self._settings
        properties: Properties | None = None
        clean_start: Any = mqtt.MQTT_CLEAN_START_FIRST_ONLY
        if self.v5:
            clean_start = s.clean_session
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0 if s.clean_session else s.session_expiry_s
            properties.ReceiveMaximum = s.max_pending_messages
        try:
            async with asyncio.timeout(s.connect_timeout_s):
                # paho's connect() resolves, connects and (TLS) handshakes with a blocking socket.
                await self._loop.run_in_executor(
                    None,
                    lambda: self._client.connect(
                        s.broker_host,
                        s.broker_port,
                        s.keep_alive,
                        clean_start=clean_start,
                        properties=properties,
                    ),
                )
                code, session_present = await asyncio.shield(self._connack)
        except TimeoutError:
            self.abort()
            raise ConnectFailed(
                f"no CONNACK from {s.broker_host}:{s.broker_port} within {s.connect_timeout_s}s"
            ) from None
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.abort()
            refused = tls_refusal(exc, s)
            if refused is not None:
                raise refused from None
            raise ConnectFailed(f"cannot connect to {s.broker_host}:{s.broker_port}: {exc}") from None
        except ConnectionClosed as exc:
            self.abort()
            # A broker refusing (or missing) the client certificate closes the connection after the
            # handshake: the TLS alert is what the read got.
            tls_error = self._client.tls_error
            refused = tls_refusal(tls_error, s) if tls_error is not None else None
            if refused is not None:
                raise refused from None
            raise ConnectFailed(str(exc)) from None
        if code.is_failure:
            self.abort()
            text = f"broker {s.broker_host}:{s.broker_port} refused the connection: {code.getName()}"
            if code.value in _FATAL_CONNACK:
                raise Fatal(text)
            raise ConnectFailed(text)
        self.session_present = session_present
        self._misc = self._loop.create_task(self._misc_loop(), name="mqtt-keepalive")
        return session_present

    async def subscribe(self, subscriptions: list[Subscription]) -> None:
        """Subscribe to every filter; Fatal when the broker refuses one of them.

        MQTT 5 with subscription identifiers (and a broker that supports them): one SUBSCRIBE per filter,
        each with its identifier (a SUBSCRIBE carries at most one). Otherwise one SUBSCRIBE for all. The
        socket is read while waiting for the SUBACKs even when intake is paused (see ``_subscribing``).
        """
        packets: list[tuple[list[Subscription], Properties | None]]
        with_ids = self.v5 and self.subscription_identifiers_available
        if with_ids and all(sub.identifier is not None for sub in subscriptions):
            packets = []
            for sub in subscriptions:
                sub_props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
                sub_props.SubscriptionIdentifier = sub.identifier
                packets.append(([sub], sub_props))
        else:
            packets = [(subscriptions, None)]
        waiters: list[tuple[list[Subscription], asyncio.Future[list[ReasonCode]]]] = []
        for subs, props in packets:
            if self.v5:
                # retainHandling=1: retained messages only for a new subscription, not on a resubscribe.
                topics: Any = [(s.filter, SubscribeOptions(qos=s.qos, retainHandling=1)) for s in subs]
            else:
                topics = [(s.filter, s.qos) for s in subs]
            rc, mid = self._client.subscribe(topics, properties=props)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                raise ConnectFailed(f"subscribe failed: {mqtt.error_string(rc)}")
            waiter: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
            self._suback[mid] = waiter
            waiters.append((subs, waiter))
        self._subscribing = True
        self._start_reader()
        try:
            async with asyncio.timeout(self._settings.connect_timeout_s):
                for _, waiter in waiters:
                    await asyncio.wait([waiter, self._closed], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
                    if not waiter.done():
                        raise ConnectFailed(f"connection closed while subscribing: {self._closed.result()}")
        finally:
            self._subscribing = False
            if self._paused:
                self.pause_reading()
        for subs, waiter in waiters:
            for sub, code in zip(subs, waiter.result(), strict=False):
                if code.is_failure:
                    raise Fatal(f"the broker refused the subscription {sub.filter!r}: {code.getName()}")
                if code.value < sub.qos:
                    log.warning("subscription %r granted QoS %d (asked %d)", sub.filter, code.value, sub.qos)

    async def wait_closed(self) -> str:
        """Wait until the connection is lost; returns the reason."""
        return await asyncio.shield(self._closed)

    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def disconnect(self, within: float = 5.0) -> None:
        """Write everything queued (acks included), then DISCONNECT, and wait for the socket to close.

        paho closes the socket right after writing DISCONNECT; if unread bytes from the broker (a PUBREL,
        a new PUBLISH) sit in the receive buffer then, the kernel resets the connection and the broker
        may drop the acks it had not read yet (duplicates after a restart). So reading resumes first
        (messages arriving now are not acknowledged: the broker redelivers them), the queue is flushed,
        the broker gets a moment to answer, and only then DISCONNECT goes out.
        """
        if self.closed:
            return
        try:
            async with asyncio.timeout(within):
                self.resume_reading()
                await self._flushed()
                await asyncio.sleep(0.05)
                await self._flushed()
                self._client.disconnect()
                await asyncio.shield(self._closed)
        except TimeoutError:
            self.abort()

    async def _flushed(self) -> None:
        while self._client.want_write() and not self.closed:  # noqa: ASYNC110 - paho has no event for it
            await asyncio.sleep(0.005)

    def abort(self) -> None:
        """Close the socket now (nothing more is sent)."""
        if self._sock is not None:
            self._remove_io()
        try:
            self._client._sock_close()
        except Exception as exc:  # pragma: no cover - best effort
            log.debug("closing the MQTT socket: %s", exc)
        self._set_closed("aborted")

    # -- acks and flow control -------------------------------------------------------------------------

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a QoS 1/2 message on this connection (no-op once it closed: the broker redelivers)."""
        if not self.closed:
            self._client.ack(mid, qos)

    def pause_reading(self) -> None:
        """Stop reading from the socket (the broker's messages wait in its queue / the TCP window)."""
        self._paused = True
        if self._reading and self._sock is not None and not self._subscribing:
            self._loop.remove_reader(self._sock)
            self._reading = False

    def resume_reading(self) -> None:
        self._paused = False
        self._start_reader()

    def _start_reader(self) -> None:
        if not self._reading and self._sock is not None and not self.closed:
            self._loop.add_reader(self._sock, self._readable)
            self._reading = True
            self._loop.call_soon(self._readable)  # TLS may hold decrypted bytes the selector cannot see

    # -- paho callbacks ------------------------------------------------------------------------------

    def _in_loop(self, fn: Callable[[], None]) -> None:
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        def opened() -> None:
            self._sock = sock
            if not self._paused:
                self._loop.add_reader(sock, self._readable)
                self._reading = True

        self._in_loop(opened)

    def _socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_io)

    def _remove_io(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        self._reading = False

    def _register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(lambda: self._loop.add_writer(sock, self._writable))

    def _unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        def remove() -> None:
            self._loop.remove_writer(sock)

        self._in_loop(remove)

    def _readable(self) -> None:
        try:
            while (not self._paused or self._subscribing) and self._sock is not None:
                self._client.loop_read()
                pending = getattr(self._sock, "pending", None)
                if pending is None or pending() == 0:
                    break
        except Exception as exc:  # a broken TLS stream or socket: drop the connection
            log.warning("MQTT read failed: %s", exc)
            self.abort()

    def _writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception as exc:
            log.warning("MQTT write failed: %s", exc)
            self.abort()

    async def _misc_loop(self) -> None:
        # Keep-alive pings and the ping timeout, once a second (what paho's own loop does).
        while self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:  # noqa: ASYNC110
            await asyncio.sleep(1)

    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        def done() -> None:
            if props is not None and getattr(props, "SubscriptionIdentifierAvailable", 1) == 0:
                self.subscription_identifiers_available = False
            if not self._connack.done():
                self._connack.set_result((code, bool(flags.session_present)))

        self._in_loop(done)

    def _handle_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, code: Any, props: Any
    ) -> None:
        reason = code.getName() if isinstance(code, ReasonCode) else str(code)
        self._in_loop(lambda: self._set_closed(reason))

    def _set_closed(self, reason: str) -> None:
        if not self._connack.done():
            self._connack.set_exception(ConnectionClosed(f"connection closed before CONNACK: {reason}"))
            self._connack.exception()  # retrieved: no "never retrieved" warning when nobody waits
        if not self._closed.done():
            self._closed.set_result(reason)
        if self._misc is not None:
            self._misc.cancel()

    def _handle_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        waiter = self._suback.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(list(codes))

    def _handle_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._on_message(self, message)
