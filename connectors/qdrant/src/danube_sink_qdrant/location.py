"""Where the points go: a Qdrant server URL, or the client's local mode (``:memory:`` / ``path:<dir>``)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["QdrantLocation", "parse_location"]


@dataclass(frozen=True, slots=True)
class QdrantLocation:
    """``url`` for a server; ``path`` for local mode on disk; ``memory`` for local mode in memory."""

    url: str | None = None
    path: str | None = None
    memory: bool = False

    @property
    def local(self) -> bool:
        return self.memory or self.path is not None

    @property
    def display(self) -> str:
        """A printable form (a URL's user info is dropped: it could hold a secret, invariant 7)."""
        if self.memory:
            return ":memory:"
        if self.path is not None:
            return f"path:{self.path}"
        parts = urlsplit(self.url or "")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def parse_location(value: str) -> QdrantLocation:
    """Parse ``url``; raises ValueError with a readable message."""
    text = value.strip()
    if text == ":memory:":
        return QdrantLocation(memory=True)
    if text.startswith("path:"):
        path = text[len("path:") :]
        if not path:
            raise ValueError("'path:' needs a directory, e.g. 'path:/var/lib/qdrant-local'")
        return QdrantLocation(path=path)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s):// server URL, ':memory:' or 'path:<dir>'")
    return QdrantLocation(url=text)
