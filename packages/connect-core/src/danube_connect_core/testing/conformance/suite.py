"""The conformance checks as pytest tests: subclass :class:`SinkConformance` in your connector's tests.

.. code-block:: python

    from danube_connect_core.testing.conformance import SinkCase, SinkConformance

    class TestMySinkConformance(SinkConformance):
        case = SinkCase("my-sink", idempotent=True, target_type=MyTarget)

pytest collects the five tests of the subclass (the base class is not collected: its name does not
start with ``Test``). A check the case does not take part in (no ``outage``, no ``bad_records``) is
skipped with the reason. The tests are async (pytest-asyncio); each takes a minute or more.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from danube_connect_core.testing.conformance.sink_checks import (
    check_bad_input,
    check_broker_outage,
    check_sigkill_restart,
    check_sigterm_drains,
    check_target_outage,
)
from danube_connect_core.testing.conformance.target import SinkCase

__all__ = ["SinkConformance"]


@pytest.mark.asyncio
class SinkConformance:
    """The sink conformance suite for :attr:`case`; see :mod:`.sink_checks` for what each test proves."""

    #: The connector under test (set it in the subclass).
    case: ClassVar[SinkCase]

    async def test_sigkill_mid_stream_then_restart_loses_nothing(self, tmp_path: Path) -> None:
        await check_sigkill_restart(self.case, tmp_path)

    async def test_sigterm_under_load_drains_then_restart_writes_the_rest(self, tmp_path: Path) -> None:
        await check_sigterm_drains(self.case, tmp_path)

    async def test_target_outage_is_retried_and_loses_nothing(self, tmp_path: Path) -> None:
        await check_target_outage(self.case, tmp_path)

    async def test_broker_outage_is_ridden_out_and_loses_nothing(self, tmp_path: Path) -> None:
        await check_broker_outage(self.case, tmp_path)

    async def test_bad_input_is_dead_lettered_with_its_reason_and_the_rest_written(
        self, tmp_path: Path
    ) -> None:
        await check_bad_input(self.case, tmp_path)
