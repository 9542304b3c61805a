"""Fixtures of the embedded-broker tests (the brokers themselves come from the root conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from danube_embedded_broker import EmbeddedBroker
from danube_embedded_broker.testing import StubClient


@pytest_asyncio.fixture
async def client(broker: EmbeddedBroker) -> AsyncIterator[StubClient]:
    stub = StubClient(broker.url)
    yield stub
    await stub.close()
