"""Fault-injection tests: real processes (embedded broker, connectors, targets) and real faults (SIGKILL,
SIGTERM under load, broker and target outages, full or read-only storage), each asserting exact counts.

The sink checks are the conformance kit's (danube_connect_core.testing.conformance); this file
registers the connectors for them: a test that takes ``sink_case`` (``source_case``) runs once per
registered sink (source), ids the connector names, with the case each connector package ships in its
``testing`` module.
Helpers of other test directories are imported as modules of the ``tests`` package
(``tests.e2e.pipeline``, ``tests.faults.webhook_load``).
"""

from __future__ import annotations

import pytest
from danube_connect_core.testing.conformance import SinkCase, SourceCase
from danube_sink_clickhouse.testing import CASE as CLICKHOUSE
from danube_sink_deltalake.testing import CASE as DELTA_LAKE
from danube_sink_http.testing import CASE as HTTP
from danube_sink_qdrant.testing import CASE as QDRANT
from danube_sink_surrealdb.testing import CASE as SURREALDB
from danube_source_kafka.testing import CASE as KAFKA
from danube_source_mqtt.testing import CASE as MQTT
from danube_source_otel.testing import CASE as OTEL
from danube_source_postgres_cdc.testing import CASE as POSTGRES_CDC
from danube_source_webhook.testing import CASE as WEBHOOK

#: Every sink connector of the repository, in the order the fault tests run them.
SINK_CASES: tuple[SinkCase, ...] = (SURREALDB, DELTA_LAKE, QDRANT, CLICKHOUSE, HTTP)
#: The source connectors registered for the kit's source check (test_source_sigterm.py has further
#: SIGTERM tests of its own per source).
SOURCE_CASES: tuple[SourceCase, ...] = (WEBHOOK, MQTT, KAFKA, POSTGRES_CDC, OTEL)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sink_case" in metafunc.fixturenames:
        metafunc.parametrize("sink_case", SINK_CASES, ids=str)
    if "source_case" in metafunc.fixturenames:
        metafunc.parametrize("source_case", SOURCE_CASES, ids=str)
