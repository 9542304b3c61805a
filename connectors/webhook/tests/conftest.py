"""The fixtures of ``webhook_testsupport``, available to every test here."""

from __future__ import annotations

from .webhook_testsupport import open_reader, start_webhook

__all__ = ["open_reader", "start_webhook"]
