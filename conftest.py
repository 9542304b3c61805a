"""Shared pytest fixtures for the whole workspace: embedded Danube brokers.

- ``broker``: an in-process :class:`EmbeddedBroker` on a tmp data dir with fast redelivery settings.
- ``broker_factory``: ``await broker_factory(**BrokerConfig overrides)`` -> started broker; all are
  stopped at teardown. Overrides apply on top of the fast test defaults below.
- ``broker_process``: a :class:`BrokerProcess` (the real console script) on ``tmp_path / "broker-data"``;
  not started (call ``.start()``); stopped, or killed if it will not stop, at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from danube_embedded_broker import BrokerConfig, EmbeddedBroker
from danube_embedded_broker.testing import BrokerProcess

#: Fast failure handling for tests: redelivery in tens of ms instead of seconds.
FAST_BROKER_SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "ack_timeout_ms": 2_000,
    "redelivery_base_ms": 20,
    "redelivery_max_ms": 200,
    "fsync": "never",
}

BrokerFactory = Callable[..., Awaitable[EmbeddedBroker]]


@pytest_asyncio.fixture
async def broker_factory(tmp_path: Path) -> AsyncIterator[BrokerFactory]:
    brokers: list[EmbeddedBroker] = []
    counter = 0

    async def make(**overrides: Any) -> EmbeddedBroker:
        nonlocal counter
        counter += 1
        settings = {**FAST_BROKER_SETTINGS, "data_dir": tmp_path / f"broker-{counter}", **overrides}
        broker = EmbeddedBroker(BrokerConfig(**settings))
        brokers.append(broker)
        await broker.start()
        return broker

    yield make
    for broker in reversed(brokers):
        await broker.stop()


@pytest_asyncio.fixture
async def broker(broker_factory: BrokerFactory) -> EmbeddedBroker:
    return await broker_factory()


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "broker-data")
    try:
        yield process
    finally:
        if process.running and process.stop() != 0:
            process.kill()
