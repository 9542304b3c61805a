"""The conformance kit's source check for every registered source (tests/faults/conftest.py): records fed
to the real upstream without pause, SIGTERM mid-stream (exit 0 within the shutdown timeout, invariant 6),
a second process takes over, and every record the upstream acknowledged is on the topic, exactly once
for an idempotent case (invariant 1). See danube_connect_core.testing.conformance.source."""

from __future__ import annotations

from pathlib import Path

import pytest
from danube_connect_core.testing.conformance import (
    SourceCase,
    check_source_bad_input,
    check_source_sigterm_restart,
)


@pytest.mark.slow
async def test_source_sigterm_mid_stream_then_restart_loses_no_acknowledged_record(
    source_case: SourceCase, tmp_path: Path
) -> None:
    await check_source_sigterm_restart(source_case, tmp_path)


async def test_source_dead_letters_bad_input_with_its_reason_and_publishes_the_rest(
    source_case: SourceCase, tmp_path: Path
) -> None:
    await check_source_bad_input(source_case, tmp_path)
