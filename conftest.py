"""Shared pytest fixtures for the whole workspace: embedded Danube brokers.

- ``broker``: an in-process :class:`EmbeddedBroker` on a tmp data dir with fast redelivery settings.
- ``broker_factory``: ``await broker_factory(**BrokerConfig overrides)`` -> started broker; all are
  stopped at teardown. Overrides apply on top of the fast test defaults below.
- ``broker_process``: a :class:`BrokerProcess` (the real console script) on ``tmp_path / "broker-data"``;
  not started (call ``.start()``); stopped, or killed if it will not stop, at teardown.
- ``mosquitto``: a private mosquitto broker per test (``mosquitto_binary_path``: just its binary);
- ``pg_cluster``: a private PostgreSQL 15 cluster (wal_level=logical, wal2json) for the session, and
  ``pg_db``: a fresh database on it per test.

A missing service (mosquitto, PostgreSQL 15 with wal2json) skips the test with the reason, except under
CI=true, where it is a failure.

It also gives every test its tier marker (docs/testing.md "Tiers"); ``make test-fast`` runs ``-m unit``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from danube_embedded_broker import BrokerConfig, EmbeddedBroker
from danube_embedded_broker.testing import BrokerProcess

if TYPE_CHECKING:  # the connectors' test kits are imported by the fixtures that need them
    from danube_source_mqtt.testing import Mosquitto
    from danube_source_postgres_cdc.testing import PgCluster, PgDatabase

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

#: The tiers, registered as markers in pyproject.toml. Every collected test carries exactly one.
TIERS = ("unit", "integration", "faults", "hostile", "conformance", "containers")

#: Directories whose tests all belong to one tier (relative to the repository root).
DIRECTORY_TIERS = {f"tests/{tier}": tier for tier in ("faults", "hostile", "conformance", "containers")} | {
    "tests/e2e": "integration",
    "tests/interop": "integration",
}

#: Fixtures that start a broker or an external service: a test that uses one (directly or through
#: another fixture) is an integration test. Tests that start such things themselves (a broker or
#: connector process, a server) carry ``pytest.mark.integration`` in their file instead.
SERVICE_FIXTURES = frozenset(
    {"broker", "broker_factory", "broker_process", "mosquitto", "mosquitto_binary_path", "pg_cluster"}
)

ROOT = Path(__file__).resolve().parent


def tier_of(item: pytest.Item) -> str:
    """The tier of ``item``: its own tier marker, else its directory's, else ``integration`` when it
    uses a service fixture, else ``unit`` (no broker, no external service, no connector process)."""
    explicit = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
    if len(set(explicit)) > 1:
        raise pytest.UsageError(f"{item.nodeid}: more than one tier marker: {sorted(set(explicit))}")
    if explicit:
        return explicit[0]
    path = item.path.resolve()
    relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else ""
    for directory, tier in DIRECTORY_TIERS.items():
        if relative.startswith(directory + "/"):
            return tier
    if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(tier)


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


def _require(missing: str | None) -> None:
    """Skip (fail under CI=true) when a service the test needs is missing."""
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture
def mosquitto_binary_path() -> str:
    from danube_source_mqtt.testing import mosquitto_binary

    binary = mosquitto_binary()
    _require(
        None if binary else "mosquitto is not installed (apt-get install mosquitto, or scripts/bootstrap.sh)"
    )
    assert binary is not None
    return binary


@pytest.fixture
def mosquitto(mosquitto_binary_path: str, tmp_path: Path) -> Iterator[Mosquitto]:
    from danube_source_mqtt.testing import Mosquitto

    broker = Mosquitto(mosquitto_binary_path, tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    from danube_source_postgres_cdc.testing import missing_reason, private_cluster

    reason = missing_reason()
    _require(None if reason is None else f"PostgreSQL tests cannot run: {reason}")
    with private_cluster() as cluster:
        yield cluster


@pytest_asyncio.fixture
async def pg_db(pg_cluster: PgCluster) -> AsyncIterator[PgDatabase]:
    from danube_source_postgres_cdc.testing import fresh_database

    async with fresh_database(pg_cluster) as database:
        yield database
