"""RFC 6901 JSON pointers, used to take an endpoint's routing key out of the payload."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MISSING", "compile_pointer", "key_from", "resolve"]

MISSING: Any = object()


def compile_pointer(pointer: str) -> tuple[str, ...]:
    """``"/a/b~1c"`` -> ``("a", "b/c")``; ``""`` is the whole document."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError("a JSON pointer starts with /")
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/"))


def resolve(document: Any, tokens: tuple[str, ...]) -> Any:
    """The value at ``tokens``, or :data:`MISSING`."""
    node = document
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                return MISSING
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or (len(token) > 1 and token[0] == "0") or int(token) >= len(node):
                return MISSING
            node = node[int(token)]
        else:
            return MISSING
    return node


def key_from(document: Any, tokens: tuple[str, ...]) -> str | None:
    """The routing key at ``tokens``: strings as they are, other scalars and structures as compact JSON;
    None when absent or null (the record is then spread round-robin)."""
    value = resolve(document, tokens)
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
