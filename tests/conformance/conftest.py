"""The broker under test: the embedded broker by default, any Danube broker when the environment says so.

Environment (see README.md in this folder):

- ``DANUBE_CONFORMANCE_SERVICE_URL``: the broker's client URL (``http://127.0.0.1:6650``). Unset: the suite
  starts the ``danube-embedded-broker`` console script itself (one process for the session) and runs the
  restart cases by stopping and starting that process.
- ``DANUBE_CONFORMANCE_ADMIN_URL``: the broker's admin URL (informational; reported in the header).
- ``DANUBE_CONFORMANCE_RESTART_CMD``: a shell command that stops and starts the broker (and returns once
  it was started again). Unset with an external broker: the restart cases are skipped.
- ``DANUBE_CONFORMANCE_PEER_URLS``: comma-separated client URLs of the *other* brokers of the same cluster,
  for the redirect cases (the embedded default starts a peer that answers lookups with Redirect to it).
- ``DANUBE_CONFORMANCE_NAMESPACE``: an existing namespace for the suite's topics (default ``default``).
- ``DANUBE_CONFORMANCE_ACK_TIMEOUT_S``: the broker's ack timeout (default 30, Danube's default; the
  embedded default runs with 2).
- ``DANUBE_CONFORMANCE_MAX_UNACKED``: the broker's ``dispatch.max_unacked_messages`` (default 10).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from danube_connect_core.testing.harness import free_port
from danube_embedded_broker.testing import BrokerProcess

from .conformance_support import (
    EMBEDDED_ACK_TIMEOUT_S,
    EMBEDDED_MAX_UNACKED,
    ENV_ADMIN,
    ENV_SERVICE,
    Target,
    external_target,
)


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    url = os.environ.get(ENV_SERVICE, "").strip()
    if url:
        yield external_target(url)
        return
    base: Path = tmp_path_factory.mktemp("conformance")
    args = (
        "--ack-timeout-ms", str(int(EMBEDDED_ACK_TIMEOUT_S * 1000)),
        "--max-unacked", str(EMBEDDED_MAX_UNACKED),
        "--fsync", "never",
    )  # fmt: skip
    main = BrokerProcess(base / "broker", args=args)
    main.start()

    def restart() -> None:
        main.stop()
        main.start()

    # The peer plays another broker of a cluster: it advertises the main broker's URL, so its lookups
    # answer Redirect to the main broker (the redirect cases seed their topics on it: embedded brokers
    # share no metadata, a Danube cluster's brokers do). Its own URL is its port, not the ready line's.
    peer_port = free_port()
    peer = BrokerProcess(base / "peer", port=peer_port, args=(*args, "--advertised-url", main.url))
    peer.start()
    try:
        yield Target(
            service_url=main.url,
            admin_url=None,
            namespace="default",
            ack_timeout_s=EMBEDDED_ACK_TIMEOUT_S,
            max_unacked=EMBEDDED_MAX_UNACKED,
            embedded=True,
            restart=restart,
            peer_urls=[f"http://127.0.0.1:{peer_port}"],
        )
    finally:
        for process in (peer, main):
            if process.running and process.stop() != 0:
                process.kill()


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(ENV_SERVICE, "").strip()
    if not url:
        return "conformance target: embedded broker (started by the suite)"
    return f"conformance target: {url} (admin {os.environ.get(ENV_ADMIN) or '-'})"
