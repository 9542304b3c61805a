"""Opening asyncpg connections with the session settings the value converter relies on.

Failure semantics: wrong credentials, an unknown database or role are configuration errors (exit 2, the
message names what to change and never the password); an unreachable server is Fatal at start-up (exit 1)
and Retryable later (the runtime retries the poll with backoff).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from danube_connect_core import ConfigError, Fatal

from danube_source_postgres_cdc.settings import PostgresSettings

__all__ = ["SESSION_SETTINGS", "open_connection"]

#: Text output forms the converter expects (values.py); identical for snapshot reads and WAL decoding.
SESSION_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "iso_8601",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}


async def open_connection(settings: PostgresSettings, purpose: str, file: Path | None) -> Any:
    password = settings.password.get_secret_value() if settings.password is not None else None
    try:
        return await asyncpg.connect(
            settings.dsn,
            password=password,
            server_settings={**SESSION_SETTINGS, "application_name": f"danube-cdc-{purpose}"},
            timeout=15,
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise ConfigError(
            f"PostgreSQL refused the login ({_sqlstate_text(exc)}): check the user in postgres.dsn and "
            "the password in POSTGRES_PASSWORD, and that pg_hba.conf allows this client",
            file=file,
            key="postgres.dsn",
        ) from None
    except asyncpg.InvalidCatalogNameError:
        raise ConfigError(
            "the database named in postgres.dsn does not exist: create it or fix the DSN",
            file=file,
            key="postgres.dsn",
        ) from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Fatal(f"cannot connect to PostgreSQL (postgres.dsn): {type(exc).__name__}: {exc}") from None
    except ValueError as exc:  # a malformed DSN
        raise ConfigError(f"invalid DSN: {exc}", file=file, key="postgres.dsn") from None


def _sqlstate_text(exc: Exception) -> str:
    state = getattr(exc, "sqlstate", "")
    return f"SQLSTATE {state}" if state else type(exc).__name__
