"""deploy/compose on a Docker Engine without a registry (docker-compose.yml + no-registry.override.yml):
Prometheus scrapes the broker and every connector replica, every query of the Grafana dashboard returns
data through Prometheus' HTTP API, and the alert rules load (promtool, and Prometheus evaluates them).
Grafana itself has no Debian package and is not started; its dashboard is what is checked.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from .compose_support import ROOT, Project, free_port, get_json, http, wait_for

pytestmark = pytest.mark.timeout(1200)
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "danube-connect.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


class Stack:
    def __init__(self, project: Project, webhook_port: int, prometheus_port: int) -> None:
        self.project = project
        self.webhook = f"http://127.0.0.1:{webhook_port}/webhooks/stripe/payments"
        self.prometheus = f"http://127.0.0.1:{prometheus_port}"

    def query(self, expr: str) -> list[dict[str, object]]:
        answer = get_json(f"{self.prometheus}/api/v1/query?query={urllib.parse.quote(expr)}")
        assert answer["status"] == "success", answer
        result: list[dict[str, object]] = answer["data"]["result"]
        return result


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    webhook_port, prometheus_port = free_port(8080), free_port(9090)
    project = Project.for_this_run(
        "dcmon",
        ROOT / "deploy" / "compose",
        ["docker-compose.yml", "no-registry.override.yml"],
        {
            "WEBHOOK_PORT": str(webhook_port),
            "PROMETHEUS_PORT": str(prometheus_port),
            "SURREALDB_PORT": str(free_port()),
            "GRAFANA_PORT": str(free_port()),
        },
    )
    # The images scripts/images.sh built (example_e2e's test exercises `up --build`).
    with project.running("--no-build", "--scale", "webhook-connector=2"):
        s = Stack(project, webhook_port, prometheus_port)
        wait_for("Prometheus ready", lambda: http("GET", f"{s.prometheus}/-/ready")[0] == 200)
        wait_for("nginx", lambda: http("GET", f"http://127.0.0.1:{webhook_port}/lb-health")[0] == 200)
        yield s


def _send(stack: Stack, n: int) -> int:
    body = {"event": "payment.succeeded", "amount": n, "currency": "USD", "timestamp": n, "event_id": f"m{n}"}
    return http("POST", stack.webhook, body, {"x-api-key": "demo-api-key-e2e-12345"})[0]


def test_prometheus_scrapes_the_broker_and_every_connector_replica(stack: Stack) -> None:
    expected = {("danube-broker", None): 1, ("danube-connectors", "webhook-connector"): 2,
                ("danube-connectors", "surrealdb-sink"): 1}  # fmt: skip

    def all_up() -> dict[tuple[str, str | None], int] | None:
        targets = get_json(f"{stack.prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]
        up: dict[tuple[str, str | None], int] = {}
        for t in targets:
            if t["health"] == "up":
                key = (t["labels"]["job"], t["labels"].get("service"))
                up[key] = up.get(key, 0) + 1
        return up if up == expected else None

    wait_for(f"targets up: {expected}", all_up, 240, interval=3)


def _dashboard_queries() -> list[str]:
    """Every panel query and template variable query, with Grafana's variables filled in as Grafana would
    for 'All' ($connector, $topic -> .*) and a rate interval."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", []) if t.get("expr")]
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            definition = var["definition"]
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", definition)
            assert match, f"unexpected variable query {definition}"
            exprs.append(match.group(1))
    assert exprs
    return [
        e.replace("$connector", ".*").replace("$topic", ".*").replace("$__rate_interval", "1m") for e in exprs
    ]


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda n: _send(stack, n), range(200)))
    assert all(200 <= s < 300 for s in statuses), sorted(set(statuses))
    queries = _dashboard_queries()

    def empty() -> list[str]:
        return [q for q in queries if not stack.query(q)]

    missing = empty()
    if missing:
        # rate() needs two scrapes after the traffic: keep a trickle of events flowing while waiting
        def settled() -> bool:
            _send(stack, 1000)
            return not empty()

        wait_for("data for every dashboard query", settled, 180, interval=5)
    for q in queries:
        assert stack.query(q), f"no data: {q}"
    webhook_2xx = stack.query('sum(danube_webhook_requests_total{status=~"2.."})')
    assert float(webhook_2xx[0]["value"][1]) >= 200  # type: ignore[index]


def test_alert_rules_load(stack: Stack) -> None:
    check = stack.project.compose(
        "exec", "-T", "prometheus", "promtool", "check", "rules", "/etc/prometheus/alerts.yml", check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    names = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}

    def evaluated() -> dict[str, str] | None:
        groups = get_json(f"{stack.prometheus}/api/v1/rules")["data"]["groups"]
        health = {r["name"]: r["health"] for g in groups for r in g["rules"]}
        return health if set(health) == names and "unknown" not in health.values() else None

    health = wait_for("every alert rule evaluated", evaluated, 120, interval=3)
    assert set(health.values()) == {"ok"}, health
    firing = stack.query("ALERTS")
    assert not [
        a for a in firing if a["metric"].get("alertname") in {"DanubeConnectorDown", "DanubeBrokerDown"}
    ]  # type: ignore[union-attr]
