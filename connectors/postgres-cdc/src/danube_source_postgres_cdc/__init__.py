"""Danube Connect source: PostgreSQL change data capture through logical decoding.

The connector polls a logical replication slot (wal2json format 2 by default, pgoutput as an option),
publishes every row change of the mapped tables as a Debezium-style envelope, and advances the slot only
past transactions whose every record Danube acknowledged (invariant 1, docs/architecture.md).
"""

from danube_source_postgres_cdc.connector import PostgresCdcSource
from danube_source_postgres_cdc.settings import PostgresSettings, TableMapping

__all__ = ["PostgresCdcSource", "PostgresSettings", "TableMapping"]
