"""A small JSON path subset for column mappings: ``$``, ``$.a.b``, ``$.items[0].sku``, ``a.b``."""

from __future__ import annotations

import re
from typing import Any

from danube_connect_core.columns import MISSING as _MISSING

__all__ = ["MISSING", "JsonPath"]

_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


#: Returned when the path does not exist in a document (distinct from a JSON null); connect-core's, so
#: the batch column builder treats a missing nested field like a missing top-level one.
MISSING: Any = _MISSING


class JsonPath:
    """A compiled path; :meth:`get` returns the value or :data:`MISSING`."""

    def __init__(self, text: str) -> None:
        self.text = text
        body = text.strip()
        if body.startswith("$"):
            body = body[1:]
        steps: list[str | int] = []
        pos = 0
        while pos < len(body):
            m = _TOKEN.match(body, pos)
            if m is None or m.end() == pos:
                raise ValueError(f"invalid JSON path {text!r} at position {pos}")
            name, index, quoted = m.groups()
            steps.append(int(index) if index is not None else (name or quoted))
            pos = m.end()
        self.steps: tuple[str | int, ...] = tuple(steps)

    def get(self, document: Any) -> Any:
        if len(self.steps) == 1 and type(self.steps[0]) is str:  # the common case, kept fast
            return document.get(self.steps[0], MISSING) if type(document) is dict else MISSING
        node = document
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return MISSING
            elif not isinstance(node, dict) or step not in node:
                return MISSING
            node = node[step]
        return node
