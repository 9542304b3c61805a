"""The example sink passes the conformance kit: SIGKILL and restart, SIGTERM drain, a locked database,
a broker outage and bad records, each against a real SQLite file and real ``danube-connect run``
processes (see danube_connect_core.testing.conformance.sink_checks for what each test proves)."""

from __future__ import annotations

import pytest
from danube_connect_core.testing.conformance import SinkConformance
from danube_example_sqlite_sink.testing import CASE

pytestmark = pytest.mark.slow


class TestSqliteSinkConformance(SinkConformance):
    case = CASE
