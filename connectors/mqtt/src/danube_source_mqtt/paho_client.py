"""A paho-mqtt client whose QoS 1 *and* QoS 2 acknowledgements are sent only when the connector says so.

paho-mqtt 2.x has ``manual_ack``: QoS 1 PUBACKs wait for :meth:`ack`. For QoS 2 it still answers PUBREC
as soon as the PUBLISH arrives and hands the message over only on PUBREL; from PUBREC on the broker
considers the message delivered and will never send it again, so a crash before the Danube publish
would lose it. This subclass treats QoS 2 like QoS 1: the message is handed over at once and PUBREC is
sent by :meth:`ack` after Danube acknowledged it (invariant 1); a PUBREL is then answered with PUBCOMP,
also for a packet id a previous process had PUBREC'd (otherwise that id would stay in flight forever).

This overrides two private packet handlers of paho-mqtt 2.x (pinned ``<3``); the end-to-end tests against
mosquitto exercise both.
"""

from __future__ import annotations

import ssl

from paho.mqtt import _packet
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

__all__ = ["ManualAckClient"]


class ManualAckClient(mqtt.Client):
    """paho client in manual-ack mode with deferred PUBREC for QoS 2 (see the module docstring)."""

    def __init__(self, *, client_id: str, protocol: MQTTProtocolVersion, clean_session: bool | None) -> None:
        super().__init__(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=clean_session,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        #: The TLS error that ended the connection while reading (paho reports it only as "connection
        #: lost"); a broker refusing the client certificate shows up here, after the handshake.
        self.tls_error: ssl.SSLError | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        try:
            return super()._sock_recv(bufsize)
        except ssl.SSLWantReadError:
            raise
        except ssl.SSLError as exc:
            self.tls_error = exc
            raise

    def _handle_publish(self) -> MQTTErrorCode:
        qos = (self._in_packet["command"] & 0x06) >> 1
        if qos != 2:
            return super()._handle_publish()
        result = _packet.decode_publish(self._in_packet["command"], self._in_packet["packet"], self._protocol)
        message = mqtt.MQTTMessage(mid=result.mid, topic=result.topic)
        message.dup = result.dup
        message.qos = result.qos
        message.retain = result.retain
        message.properties = result.properties
        message.payload = result.payload
        message.timestamp = mqtt.time_func()
        self._handle_on_message(message)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_pubrel(self) -> MQTTErrorCode:
        result = _packet.decode_pubrel(self._in_packet["command"], self._in_packet["packet"], self._protocol)
        return self._send_pubcomp(result.mid)

    def ack(self, mid: int, qos: int) -> MQTTErrorCode:
        """QoS 1: PUBACK; QoS 2: PUBREC (the broker then releases it with PUBREL, answered by PUBCOMP)."""
        if qos == 1:
            return self._send_puback(mid)
        if qos == 2:
            return self._send_pubrec(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
