"""example_e2e as a user runs it, on a Docker Engine without a registry: docker-compose.yml plus
no-registry.override.yml (embedded broker for Danube, the sink's embedded store for the SurrealDB
server, nginx from Debian). `up -d --build --scale webhook-connector=3`, then payment events through
nginx on 127.0.0.1: every accepted event stored exactly once, every replica served a share, a replica
killed and the sink restarted while events flow, and `down -v` leaves nothing behind.

Events carry a unique `event_id` (the schema allows extra fields); rows are counted per `event_id`
through the sink's read-only query API (`count?group_by=event_id`), so a missing or doubled event is
seen by its id, not only in the total.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from danube_connect_core.testing.waits import metric_sum

from .compose_support import ROOT, Project, free_port, free_range, get_json, http, wait_for

pytestmark = pytest.mark.timeout(1500)
API_KEY = "demo-api-key-e2e-12345"
EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")


class E2E:
    def __init__(self, project: Project, webhook_port: int, query_port: int) -> None:
        self.project = project
        self.webhook = f"http://127.0.0.1:{webhook_port}/webhooks/stripe/payments"
        self.lb_health = f"http://127.0.0.1:{webhook_port}/lb-health"
        self.query = f"http://127.0.0.1:{query_port}/tables/stripe_payments/count"

    def send(self, event_id: str, n: int) -> int:
        """POST one event through nginx; the HTTP status, 0 when the connection failed."""
        body = {"event": EVENTS[n % 4], "amount": 100 + n, "currency": "EUR", "timestamp": 1_700_000_000 + n,
                "event_id": event_id}  # fmt: skip
        try:
            status, _ = http("POST", self.webhook, body, {"x-api-key": API_KEY}, timeout=90)
        except OSError:
            return 0
        return status

    def stored(self) -> dict[str, int]:
        """event_id -> number of rows with it."""
        answer = get_json(f"{self.query}?group_by=event_id")
        return {g["event_id"]: int(g["total"]) for g in answer["groups"]}

    def replica_metrics(self) -> dict[str, float]:
        """container id -> 2xx answers it gave on the payments endpoint (its own /metrics)."""
        served = {}
        for cid in self.project.containers("webhook-connector"):
            port = self.project.host_port(cid, 9090)
            status, text = http("GET", f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            decoded = text.decode()
            served[cid] = sum(
                metric_sum(decoded, "danube_webhook_requests_total", status=s) for s in ("200", "201", "202")
            )
        return served


@pytest.fixture(scope="module")
def e2e() -> Iterator[E2E]:
    webhook_port = free_port(8080)
    query_port = free_port()
    project = Project.for_this_run(
        "dce2e",
        ROOT / "example_e2e",
        ["docker-compose.yml", "no-registry.override.yml"],
        {
            "WEBHOOK_PORT": str(webhook_port),
            "SINK_QUERY_PORT": str(query_port),
            "WEBHOOK_METRICS_PORTS": free_range(9),
            "SINK_METRICS_PORTS": free_range(9, start=30000),
            "SURREALDB_PORT": str(free_port()),
        },
    )
    with project.running("--build", "--scale", "webhook-connector=3", timeout=1200, no_leftovers=False):
        suite = E2E(project, webhook_port, query_port)
        wait_for("nginx on 127.0.0.1", lambda: http("GET", suite.lb_health)[0] == 200)
        wait_for("the sink's query API", lambda: get_json(suite.query)["total"] == 0)
        yield suite


def test_1000_events_exactly_once_over_three_replicas(e2e: E2E) -> None:
    assert len(e2e.project.containers("webhook-connector")) == 3
    ids = [f"a{n:05d}" for n in range(1000)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(e2e.send, ids, range(1000)))
    refused = {s: statuses.count(s) for s in set(statuses) if not 200 <= s < 300}
    assert not refused, f"statuses other than 2xx: {refused}"

    def all_rows() -> dict[str, int] | None:
        rows = e2e.stored()
        return rows if sum(rows.values()) >= 1000 else None

    stored = wait_for("1,000 rows", all_rows, 300)
    assert sum(stored.values()) == 1000
    assert set(stored) == set(ids), "the stored event ids are not the ones sent"
    assert set(stored.values()) == {1}, "an event is stored more than once"
    assert get_json(e2e.query)["total"] == 1000

    served = e2e.replica_metrics()
    print(f"2xx answers per webhook replica: {sorted(served.values())}")
    assert len(served) == 3
    assert all(n > 0 for n in served.values()), f"a replica served nothing: {served}"
    assert sum(served.values()) == 1000


def test_replica_killed_and_sink_restarted_while_events_flow(e2e: E2E) -> None:
    """Nothing answered 2xx is lost, nothing is stored twice."""
    total = 1500
    statuses: dict[str, int] = {}
    sent = threading.Semaphore(0)

    def send(n: int) -> None:
        event_id = f"b{n:05d}"
        statuses[event_id] = e2e.send(event_id, n)
        sent.release()

    victim = e2e.project.containers("webhook-connector")[0]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(send, n) for n in range(total)]
        for _ in range(300):
            sent.acquire()
        e2e.project.docker("kill", victim)
        killed_at = len(statuses)
        for _ in range(400):
            sent.acquire()
        e2e.project.compose("restart", "surrealdb-sink", timeout=300)
        for f in futures:
            f.result()

    # The kill landed while events were flowing, and the replica stayed down (Docker does not apply the
    # restart policy to a container stopped by `docker kill`): nginx had to route around it.
    assert 0 < killed_at < total
    state = e2e.project.docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", victim).stdout
    assert state.split() == ["exited", "137"], state
    accepted = {i for i, s in statuses.items() if 200 <= s < 300}
    failed = {
        s: sum(1 for v in statuses.values() if v == s) for s in set(statuses.values()) - {200, 201, 202}
    }
    print(f"accepted {len(accepted)} of {total}; other answers: {failed}")
    assert len(accepted) >= total // 2, f"too few events accepted: {failed}"

    def settled() -> dict[str, int] | None:
        rows = {k: v for k, v in e2e.stored().items() if k.startswith("b")}
        return rows if accepted <= set(rows) else None

    rows = wait_for("every accepted event in the store", settled, 300)
    rows = {k: v for k, v in e2e.stored().items() if k.startswith("b")}  # read again after settling
    doubled = {k: v for k, v in rows.items() if v != 1}
    assert not doubled, f"stored more than once: {sorted(doubled)[:20]}"
    assert set(rows) <= set(statuses), "a row with an id never sent"
    assert accepted <= set(rows)
    # The sink came back: the first phase's rows are all still there.
    assert sum(1 for k in e2e.stored() if k.startswith("a")) == 1000


def test_down_removes_everything(e2e: E2E) -> None:
    e2e.project.compose("down", "-v", "--timeout", "20", timeout=300)
    left = e2e.project.leftovers()
    assert left == {"containers": [], "networks": [], "volumes": []}, left
