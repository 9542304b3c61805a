"""Deprecated import path: everything here lives in :mod:`danube_connect_core.resilience`.

Kept only until the runtimes and the MQTT intake import from the resilience module (issue 15); do not add
new importers.
"""

from danube_connect_core.resilience import RetriesExhausted, backoff_delay, retry_retryable

__all__ = ["RetriesExhausted", "backoff_delay", "retry_retryable"]
