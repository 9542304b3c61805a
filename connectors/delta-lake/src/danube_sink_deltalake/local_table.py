"""Local tables: whether the sink can write where a local table lives (checked once, at start-up).

A table on a read-only filesystem (a volume mounted read-only, a filesystem the kernel turned read-only
after an error) or in a directory this process may not write cannot take a single commit, so the sink
refuses to start with one clear line instead of retrying every batch until its budget runs out. The same
condition arising while the sink runs is a target outage: retried, not-ready meanwhile (invariant 5).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["local_path", "unwritable_reason"]


def local_path(uri: str) -> Path | None:
    """The filesystem path of a local table (a plain path or ``file://``); None for object stores."""
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri:
        return None
    return Path(uri)


def unwritable_reason(path: Path) -> str | None:
    """Why the table at ``path`` cannot be written, or None when it can.

    Checks the table directory, or the nearest existing parent it would be created in.
    """
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if os.access(existing, os.W_OK):
        return None
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"{existing} is on a read-only filesystem"
    return f"{existing} is not writable by this process (uid {os.geteuid()})"
