"""A read-only HTTP endpoint counting rows of the mapped tables (``[surrealdb.query_api]``, off by default).

Why it exists: an embedded ``surrealkv://`` store belongs to the one process that opened it (the engine
takes no lock and keeps state in memory, so a second process opening the same directory sees a stale
view and may crash on exit). ``danube-connect-demo`` (examples/payments-demo) therefore reads through the
sink process.

Only fixed queries run, on the mapped tables only, with the grouping field validated as an identifier;
no SurrealQL is ever taken from a request:

- ``GET /tables`` -> ``{"tables": [...]}``
- ``GET /tables/{table}/count`` -> ``{"table": t, "total": n}``
- ``GET /tables/{table}/count?group_by=event`` -> ``{"table": t, "group_by": "event", "total": n,
  "groups": [{"event": "payment.failed", "total": 26}, ...]}`` (the SurrealQL it runs is
  ``SELECT event, count() AS total FROM t GROUP BY event``).

Errors: 404 unknown table, 400 bad ``group_by``, 503 when the database does not answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from danube_sink_surrealdb.database import SurrealDatabase
from danube_sink_surrealdb.failures import ConnectionProblem, StatementRejected

__all__ = ["QueryApi", "count_rows"]

log = logging.getLogger("danube_connect.surrealdb.query_api")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


async def count_rows(db: SurrealDatabase, table: str, group_by: str | None = None) -> dict[str, Any]:
    """Row count of ``table`` (validated by the caller), optionally grouped by a top-level field."""
    if group_by is None:
        result = await db.query(f"SELECT count() AS total FROM `{table}` GROUP ALL")
        total = int(result[0]["total"]) if result else 0
        return {"table": table, "total": total}
    result = await db.query(f"SELECT `{group_by}`, count() AS total FROM `{table}` GROUP BY `{group_by}`")
    groups = [{group_by: row.get(group_by), "total": int(row["total"])} for row in result or []]
    return {"table": table, "group_by": group_by, "total": sum(g["total"] for g in groups), "groups": groups}


class QueryApi:
    """The HTTP server; :meth:`start` returns the bound port (``port = 0`` picks a free one)."""

    def __init__(self, db: SurrealDatabase, tables: Sequence[str], host: str, port: int) -> None:
        self.db = db
        self.tables = sorted(set(tables))
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/tables", self._tables)
        app.router.add_get("/tables/{table}/count", self._count)
        return app

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tables(self, _: web.Request) -> web.Response:
        return web.json_response({"tables": self.tables})

    async def _count(self, request: web.Request) -> web.Response:
        table = request.match_info["table"]
        if table not in self.tables:
            return web.json_response({"error": f"unknown table {table!r}", "tables": self.tables}, status=404)
        group_by = request.query.get("group_by")
        if group_by is not None and not _IDENT.match(group_by):
            return web.json_response(
                {"error": "group_by must be a field name (letters, digits, _)"}, status=400
            )
        try:
            body = await count_rows(self.db, table, group_by)
        except (ConnectionProblem, StatementRejected) as exc:
            log.warning("query API: %s", exc)
            return web.json_response({"error": str(exc)}, status=503)
        return web.json_response(body)
