"""Bad records among good ones, for every sink (the conformance kit's bad-input check): each bad record
(the case's ``bad_records``: what that sink's target cannot hold) is dead-lettered once with
``error.reason`` and ``error.connector``; the good records beside it are written once; the sink keeps
running and exits 0 on SIGTERM (invariants 4 and 5)."""

from __future__ import annotations

from pathlib import Path

from danube_connect_core.testing.conformance import SinkCase, check_bad_input


async def test_bad_records_are_dead_lettered_with_their_reason_and_the_rest_written_once(
    sink_case: SinkCase, tmp_path: Path
) -> None:
    await check_bad_input(sink_case, tmp_path, n=500)
