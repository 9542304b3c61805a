"""Secrets referenced from TOML by environment variable name (invariant 7).

A field typed :data:`EnvSecret` holds, in the TOML file, the *name* of an environment variable; loading
resolves it to the variable's value wrapped in :class:`pydantic.SecretStr`, so it never shows in a repr, a
log line or an error message. An unset variable is a configuration error naming the variable (not a value).
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr

__all__ = ["EnvSecret", "resolve_env_secret"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def resolve_env_secret(value: Any) -> SecretStr:
    """Resolve an environment variable name to its value; raise ``ValueError`` when unset."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, dict) and set(value) == {"env"}:
        value = value["env"]
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ValueError("must be the name of an environment variable holding the secret")
    resolved = os.environ.get(value)
    if resolved is None or resolved == "":
        raise ValueError(f"environment variable {value} is not set")
    return SecretStr(resolved)


EnvSecret = Annotated[SecretStr, BeforeValidator(resolve_env_secret)]
