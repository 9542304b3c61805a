"""Fixtures: the real Apache Kafka broker (one per test session, see danube_source_kafka.testing).

Without the install (bash scripts/install_kafka.sh, run by scripts/bootstrap.sh) the tests that need it
skip, except under CI=true where they fail.
"""

from __future__ import annotations

import os

import pytest
from danube_source_kafka.testing import KafkaBroker, KafkaMissing, session_broker


@pytest.fixture(scope="session")
def kafka() -> KafkaBroker:
    try:
        return session_broker()
    except KafkaMissing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
