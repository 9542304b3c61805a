"""Name TLS and certificate failures plainly, and tell the ones no retry can fix.

A certificate problem (the broker's certificate not signed by the configured CA, expired, issued for
another host name; the broker refusing or requiring a client certificate) stays the same on every
attempt: it is a :class:`TlsRefused` (a Fatal), which the connector turns into a configuration error
(exit 2) when it happens on the first connection, and which stops a running connector (exit 1)
otherwise. The message says what is wrong and which ``[mqtt]`` key to look at.
"""

from __future__ import annotations

import ssl

from danube_connect_core import Fatal

from danube_source_mqtt.settings import MqttSettings

__all__ = ["TlsRefused", "tls_refusal"]

#: OpenSSL verify codes meaning "no chain to a trusted CA".
_UNTRUSTED = {2, 18, 19, 20, 21, 27, 30}
#: TLS alerts the broker sends about the client certificate, by OpenSSL reason.
_CLIENT_CERT_ALERTS = (
    "ALERT_UNKNOWN_CA",
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_REVOKED",
    "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_ACCESS_DENIED",
    "ALERT_DECRYPT_ERROR",
)


class TlsRefused(Fatal):
    """A TLS certificate problem no retry will fix; ``key`` is the configuration key to look at."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def tls_refusal(exc: BaseException, settings: MqttSettings) -> TlsRefused | None:
    """The plain-worded TlsRefused for ``exc``, or None when it is not a certificate problem."""
    if not isinstance(exc, ssl.SSLError):
        return None
    tls = settings.tls
    ca = f"ca_file {tls.ca_file}" if tls is not None and tls.ca_file is not None else "the system CAs"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        detail = exc.verify_message
        if code in _UNTRUSTED:
            return TlsRefused(
                f"TLS: the broker's certificate is not signed by {ca} ({detail})", "mqtt.tls.ca_file"
            )
        if code == 10:
            return TlsRefused(
                "TLS: the broker's certificate (or one of its chain) has expired", "mqtt.tls.ca_file"
            )
        if code == 9:
            return TlsRefused(
                "TLS: the broker's certificate is not valid yet (check the clocks)", "mqtt.tls.ca_file"
            )
        if code in (62, 64):
            return TlsRefused(
                f"TLS: hostname mismatch: the broker's certificate is not valid for broker_host "
                f"{settings.broker_host!r}",
                "mqtt.broker_host",
            )
        return TlsRefused(f"TLS: the broker's certificate was refused: {detail}", "mqtt.tls.ca_file")
    reason = str(getattr(exc, "reason", "") or "")
    has_cert = tls is not None and tls.cert_file is not None
    if "ALERT_CERTIFICATE_REQUIRED" in reason or ("ALERT_HANDSHAKE_FAILURE" in reason and not has_cert):
        return TlsRefused(
            "TLS: the broker requires a client certificate: set [mqtt.tls] cert_file and key_file",
            "mqtt.tls.cert_file",
        )
    if any(alert in reason for alert in _CLIENT_CERT_ALERTS):
        which = f"cert_file {tls.cert_file}" if has_cert and tls is not None else "no client certificate"
        return TlsRefused(
            f"TLS: the broker refused the client certificate ({which}): {reason.lower()}",
            "mqtt.tls.cert_file",
        )
    return None
