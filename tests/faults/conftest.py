"""Fault-injection tests: real processes (embedded broker, connectors, targets) and real faults (SIGKILL,
SIGTERM under load, broker and target outages, full or read-only storage), each asserting exact counts.

This directory is put on sys.path so its helper modules import by name (pytest runs with
--import-mode=importlib; the helper names are unique in the workspace).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The payments pipeline helpers (tests/e2e/pipeline.py: configs, API key, store readers) serve the fault
# tests of the flagship pipeline too; ``import pipeline`` finds them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
