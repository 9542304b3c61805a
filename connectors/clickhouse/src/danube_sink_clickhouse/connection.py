"""Opening a clickhouse-connect client from the settings (HTTP, or ``chdb://`` for the in-process engine).

The client is synchronous; the connector calls it from a worker thread. The password is passed to the
client only (invariant 7) and never logged.
"""

from __future__ import annotations

from typing import Any

import clickhouse_connect

from danube_sink_clickhouse.settings import ClickHouseSettings

__all__ = ["open_client", "redacted"]


def open_client(settings: ClickHouseSettings) -> Any:
    """A connected client for ``settings`` (raises the driver's exception when unreachable)."""
    if settings.url.startswith("chdb://"):
        return clickhouse_connect.get_client(dsn=settings.url, database=settings.database)
    password = settings.password.get_secret_value() if settings.password is not None else ""
    return clickhouse_connect.get_client(
        dsn=settings.url,
        username=settings.username,
        password=password,
        database=settings.database,
        connect_timeout=settings.connect_timeout_s,
        send_receive_timeout=settings.send_receive_timeout_s,
        compress=settings.compress,
        autogenerate_session_id=False,
    )


def redacted(url: str) -> str:
    """The URL without any user info (for logs)."""
    scheme, sep, rest = url.partition("://")
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}{sep}{host}"
