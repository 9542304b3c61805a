"""The fixtures of ``otel_testsupport``, available to every test here."""

from __future__ import annotations

from .otel_testsupport import start_otel

__all__ = ["start_otel"]
