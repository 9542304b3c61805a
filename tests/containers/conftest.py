"""The container tier (tests/containers): tests that run the images `scripts/images.sh` built on a Docker
Engine. Run them with `bash scripts/images.sh test` (builds first, exports DOCKER_HOST/DOCKER and the image
names); `scripts/test.sh` and `.ci/run` do that after the other tests. Without an engine they skip, and fail
under CI=true or inside `images.sh test`.

Helpers live beside this file (compose_support.py), imported relatively.
"""

import pytest

from .compose_support import require_engine


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker Engine answers (skip or fail otherwise, see compose_support.require_engine)."""
    require_engine()
