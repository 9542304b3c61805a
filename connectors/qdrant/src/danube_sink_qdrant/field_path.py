"""Dotted field paths into a JSON object payload (``doc.embedding``)."""

from __future__ import annotations

from typing import Any

__all__ = ["MISSING", "get_path", "without_paths"]

MISSING: Any = object()


def get_path(payload: Any, path: str) -> Any:
    """The value at ``path``, or :data:`MISSING`."""
    node = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def without_paths(payload: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """A copy of ``payload`` without the fields at ``paths`` (only the touched objects are copied)."""
    out = dict(payload)
    for path in paths:
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                break
            node[part] = child = dict(child)
            node = child
        else:
            node.pop(parts[-1], None)
    return out
