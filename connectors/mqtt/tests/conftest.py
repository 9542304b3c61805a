"""Fixtures: a real mosquitto broker (Debian package) per test.

Without mosquitto the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from danube_source_mqtt.testing import Mosquitto, mosquitto_binary


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = mosquitto_binary()
    if binary is None:
        message = "mosquitto is not installed (apt-get install mosquitto, or scripts/bootstrap.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    broker = Mosquitto(binary, tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_binary_path() -> str:
    binary = mosquitto_binary()
    if binary is None:
        message = "mosquitto is not installed (apt-get install mosquitto, or scripts/bootstrap.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary
