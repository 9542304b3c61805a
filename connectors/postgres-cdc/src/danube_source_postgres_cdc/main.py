"""The ``danube-source-postgres-cdc`` console script."""

from __future__ import annotations

from danube_connect_core import connector_main

from danube_source_postgres_cdc.connector import PostgresCdcSource

__all__ = ["main"]


def main() -> None:
    connector_main(PostgresCdcSource)
