"""Storage options for delta-rs from the environment (invariant 7: credentials never come from TOML).

Every set ``AWS_*``, ``AZURE_*`` and ``GOOGLE_*`` variable is passed through as a storage option (they are
the names object_store understands: ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ALLOW_HTTP``,
``AZURE_STORAGE_ACCOUNT_NAME``, ``GOOGLE_SERVICE_ACCOUNT`` ...); the environment wins over the TOML
``storage_options``. The values are never logged; :func:`describe` lists only the keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["describe", "storage_options"]

_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_")


def storage_options(from_toml: Mapping[str, str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    out = {k: str(v) for k, v in from_toml.items()}
    for key, value in env.items():
        if key.startswith(_PREFIXES) and value:
            out[key] = value
    return out


def describe(options: Mapping[str, str]) -> str:
    """The option names only (for logs)."""
    return ", ".join(sorted(options)) or "none"
