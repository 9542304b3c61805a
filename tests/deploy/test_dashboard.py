"""The Grafana dashboard queries only metric names the code exports, and covers every standard metric.

Names come from the source tree: string literals `danube_*` in packages/*/src and connectors/*/src,
expanded the way prometheus_client names its samples (Counter `x` -> `x_total`, Histogram `x` ->
`x_bucket`/`x_sum`/`x_count`). Until the code defines them (the core metrics module; the webhook
connector's own `danube_webhook_*` metrics) the names come from the contract (docs/operations.md §7 and
the names agreed for the webhook), and the check switches to the code by itself when they land.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from .deploy_support import DEPLOY, ROOT

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "danube-connect.json"
CORE_METRICS_MODULE = ROOT / "packages" / "connect-core" / "src" / "danube_connect_core" / "metrics.py"

CORE_CONTRACT = {  # docs/operations.md §7
    "danube_connector_messages_received_total",
    "danube_connector_messages_sent_total",
    "danube_connector_errors_total",
    "danube_connector_retries_total",
    "danube_connector_dead_lettered_total",
    "danube_connector_schema_validation_failures_total",
    "danube_connector_processing_duration_seconds",
    "danube_connector_batch_size",
    "danube_connector_inflight_messages",
    "danube_connector_health",
}
WEBHOOK_CONTRACT = {"danube_webhook_requests_total", "danube_webhook_request_duration_seconds"}
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")
LITERAL = re.compile(r"""["'](danube_[a-z0-9_]+)["']""")


def _expand(names: set[str]) -> set[str]:
    return {n + s for n in names for s in SUFFIXES} | {n.removesuffix("_total") for n in names}


def _literals(paths: list[Path]) -> set[str]:
    return {m for p in paths for m in LITERAL.findall(p.read_text(errors="replace"))}


def exported_names() -> tuple[set[str], str]:
    patterns = ("packages/*/src/**/*.py", "connectors/*/src/**/*.py")
    sources = [p for pattern in patterns for p in ROOT.glob(pattern)]
    from_code = _literals(sources)
    modes = []
    names = {n for n in from_code if not n.startswith(("danube_connector_", "danube_webhook_"))}
    if CORE_METRICS_MODULE.exists():
        names |= {n for n in from_code if n.startswith("danube_connector_")}
        modes.append("core: code")
    else:
        names |= CORE_CONTRACT
        modes.append("core: docs/operations.md")
    webhook_names = {n for n in from_code if n.startswith("danube_webhook_")}
    if webhook_names:
        names |= webhook_names
        modes.append("webhook: code")
    else:
        names |= WEBHOOK_CONTRACT
        modes.append("webhook: contract")
    return _expand(names), ", ".join(modes)


def _queries(dashboard: dict[str, Any]) -> list[str]:
    out = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        out.extend(t["expr"] for t in panel.get("targets", []))
    for var in dashboard["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict):
            out.append(q["query"])
    return out


def _metric_refs(expr: str) -> set[str]:
    danube = set(re.findall(r"\b(danube_[a-z0-9_]+)\b", expr))
    selectors = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)", expr))
    return danube | selectors


def test_dashboard_uses_only_exported_metric_names() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    allowed, mode = exported_names()
    allowed |= {"up"}  # Prometheus' own per-target series
    refs = {r for q in _queries(dashboard) for r in _metric_refs(q)}
    unknown = sorted(refs - allowed)
    assert not unknown, f"dashboard queries names the code does not export ({mode}): {unknown}"


def test_dashboard_covers_every_standard_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    text = " ".join(_queries(dashboard))
    for family in sorted(CORE_CONTRACT | WEBHOOK_CONTRACT):
        base = family.removesuffix("_total")
        assert base in text, f"no panel for {family}"


def test_core_metric_names_match_the_contract_when_the_code_exists() -> None:
    if not CORE_METRICS_MODULE.exists():
        return
    allowed, _ = exported_names()
    assert allowed >= CORE_CONTRACT, sorted(CORE_CONTRACT - allowed)


def test_dashboard_is_provisioned() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "danube-connect"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    provisioning = DEPLOY / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "danube-connect.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"
