"""Makes ``webhook_testsupport`` importable (pytest runs with --import-mode=importlib) and its fixtures
available."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhook_testsupport import open_reader, start_webhook

__all__ = ["open_reader", "start_webhook"]
