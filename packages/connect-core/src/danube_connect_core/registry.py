"""Finding connectors: entry points in the ``danube_connect.connectors`` group, or ``module:Class``.

A connector package registers itself in its pyproject::

    [project.entry-points."danube_connect.connectors"]
    webhook = "danube_source_webhook.connector:WebhookSource"

so that ``danube-connect run webhook --config FILE`` finds it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

from danube_connect_core.connector import SinkConnector, SourceConnector

__all__ = ["ENTRY_POINT_GROUP", "ConnectorNotFound", "available_connectors", "find_connector"]

ENTRY_POINT_GROUP = "danube_connect.connectors"
ConnectorClass = type[SourceConnector] | type[SinkConnector]


class ConnectorNotFound(LookupError):
    pass


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_connectors() -> list[str]:
    """Names of the installed connectors."""
    return sorted(_entry_points())


def _check(obj: object, where: str) -> ConnectorClass:
    if isinstance(obj, type) and issubclass(obj, SourceConnector | SinkConnector):
        return obj
    raise ConnectorNotFound(f"{where} is not a SourceConnector or SinkConnector subclass")


def find_connector(name: str) -> ConnectorClass:
    """The connector class registered as ``name``, or named ``package.module:Class``."""
    eps = _entry_points()
    if name in eps:
        return _check(eps[name].load(), f"entry point {name!r}")
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConnectorNotFound(f"cannot import {module_name}: {exc}") from None
        try:
            return _check(getattr(module, attr), name)
        except AttributeError:
            raise ConnectorNotFound(f"{module_name} has no attribute {attr}") from None
    known = ", ".join(sorted(eps)) or "none installed"
    raise ConnectorNotFound(f"unknown connector {name!r} (available: {known})")


def connector_for_section(section_names: set[str]) -> ConnectorClass | None:
    """The installed connector whose config section is among ``section_names`` (for ``validate``)."""
    for ep in _entry_points().values():
        try:
            cls = _check(ep.load(), ep.name)
        except Exception:
            continue
        if cls.config_section and cls.config_section in section_names:
            return cls
    return None
