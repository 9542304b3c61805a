"""The broker stopped for 8 s under every sink, then started again on the same port and data dir (the
conformance kit's broker-outage check): the sink stays up, reconnects by itself and writes every record
once; nothing is dead-lettered (invariant 5: an outage is not poison)."""

from __future__ import annotations

from pathlib import Path

import pytest
from danube_connect_core.testing.conformance import SinkCase, check_broker_outage


@pytest.mark.slow
async def test_broker_stopped_8s_under_the_sink_is_ridden_out_and_loses_nothing(
    sink_case: SinkCase, tmp_path: Path
) -> None:
    await check_broker_outage(sink_case, tmp_path, n=2_000, outage_s=8.0)
