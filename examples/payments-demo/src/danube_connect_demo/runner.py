"""Orchestration of ``danube-connect-demo``: start, wait for ready, send, wait for storage, report, stop.

Failure semantics: any child exiting early, or a wait that times out, prints what happened and where the
logs are and exits 1. SIGINT/SIGTERM at any point stops the children in order (webhook source first, so
nothing new is accepted; then the sink, which drains and acks; then the broker) and exits 0 when they
all stopped cleanly. Children that do not stop within their budget are killed with their process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import socket
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from danube_connect_demo.configs import API_KEY, PATH, TABLE, write_configs
from danube_connect_demo.payments import random_payment
from danube_connect_demo.processes import MissingCommand, ServiceProcess, find_command
from danube_connect_demo.report import QUERY, ProgressBar, render_table

__all__ = ["DemoError", "DemoOptions", "run_demo"]

MARKER = ".danube-connect-demo"
BROKER_READY = "danube-embedded-broker ready at "
_STATE_DIRS = ("broker", "surrealdb", "config", "logs")


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why (and where the logs are)."""


class _Interrupted(Exception):
    pass


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    events: int = 100
    once: bool = False
    webhook_port: int = 8080
    broker_port: int = 0
    keep_data: bool = False
    concurrency: int = 8
    timeout_s: float = 60.0
    seed: int | None = None


def prepare_data_dir(data_dir: Path, keep: bool) -> Path:
    """Create (or reset) the demo's data directory; refuses a non-empty directory it did not create."""
    data_dir = data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()) and not (data_dir / MARKER).exists():
        raise DemoError(f"{data_dir} is not empty and was not created by the demo: choose another --data-dir")
    if not keep:
        for sub in _STATE_DIRS:
            shutil.rmtree(data_dir / sub, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("created by `danube-connect-demo`; safe to delete\n")
    return data_dir


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Demo:
    def __init__(self, options: DemoOptions, out: TextIO) -> None:
        self.o = options
        self.out = out
        self.stop = asyncio.Event()
        self.signalled = False
        self.services: list[ServiceProcess] = []
        self.broker_url = ""

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # -- waiting, interruptible ----------------------------------------------------------------------

    async def _until(
        self, check: Callable[[], Awaitable[Any]], what: str, within: float | None = None
    ) -> Any:
        """Poll ``check`` until it returns a truthy value; raise on a signal, a dead child or the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (within if within is not None else self.o.timeout_s)
        while True:
            if self.stop.is_set():
                raise _Interrupted()
            for svc in self.services:
                if not svc.running:
                    raise DemoError(
                        f"{svc.name} exited with code {svc.returncode()} while waiting for {what}; "
                        f"last lines of {svc.log_path}:\n{svc.log_tail()}"
                    )
            value = await check()
            if value:
                return value
            if loop.time() > deadline:
                raise DemoError(f"timed out waiting for {what}; logs in {self.o.data_dir / 'logs'}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.05)

    async def _port(self, svc: ServiceProcess, key: str) -> int:
        async def check() -> int | None:
            return svc.ports.get(key)

        port: int = await self._until(check, f"{svc.name} to report its {key}")
        return port

    async def _ready(self, session: aiohttp.ClientSession, svc: ServiceProcess, port: int) -> None:
        async def check() -> bool:
            try:
                async with session.get(f"http://127.0.0.1:{port}/ready") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await self._until(check, f"{svc.name} to be ready (http://127.0.0.1:{port}/ready)")

    # -- the steps ---------------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str], **kw: Any) -> ServiceProcess:
        svc = ServiceProcess(name, argv, self.o.data_dir / "logs" / f"{name}.log", **kw).start()
        self.services.append(svc)
        return svc

    async def run(self) -> int:
        o = self.o
        broker_cmd = find_command("danube-embedded-broker", "danube-embedded-broker")
        webhook_cmd = find_command("danube-source-webhook", "danube-source-webhook")
        sink_cmd = find_command("danube-sink-surrealdb", "danube-sink-surrealdb")
        if o.webhook_port and not _port_is_free(o.webhook_port):
            raise DemoError(f"port {o.webhook_port} is in use: pass --webhook-port N (0 picks a free port)")
        self.say("Danube Connect demo: Stripe-style payment webhooks -> Danube -> SurrealDB")
        self.say(f"  data dir      {o.data_dir}")

        def on_broker_line(line: str) -> None:
            if line.startswith(BROKER_READY):
                self.broker_url = line[len(BROKER_READY) :].strip()

        self._start(
            "broker",
            [*broker_cmd, "--host", "127.0.0.1", "--port", str(o.broker_port),
             "--data-dir", str(o.data_dir / "broker"), "--namespace", "stripe"],
            on_stdout=on_broker_line,
        )  # fmt: skip

        async def broker_up() -> str:
            return self.broker_url

        await self._until(broker_up, "the embedded broker")
        self.say(f"  broker        {self.broker_url} (embedded, namespace stripe)")

        files = write_configs(o.data_dir, self.broker_url, o.webhook_port)
        env = {"LOG_FORMAT": "json", "LOG_LEVEL": "info"}
        webhook = self._start(
            "webhook-source",
            [*webhook_cmd, "--config", str(files.webhook_config)],
            env={**env, "WEBHOOK_API_KEY": API_KEY},
            port_keys=("metrics_port", "webhook_port"),
        )
        sink = self._start(
            "surrealdb-sink",
            [*sink_cmd, "--config", str(files.sink_config)],
            env=env,
            port_keys=("metrics_port", "query_api_port"),
        )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            web_port = await self._port(webhook, "webhook_port")
            await self._ready(session, webhook, await self._port(webhook, "metrics_port"))
            self.say(f"  webhook       http://127.0.0.1:{web_port}{PATH} (ready)")
            query_port = await self._port(sink, "query_api_port")
            await self._ready(session, sink, await self._port(sink, "metrics_port"))
            self.say(f"  SurrealDB     {files.surreal_store} (embedded surrealkv, table {TABLE}; sink ready)")
            counts = f"http://127.0.0.1:{query_port}/tables/{TABLE}/count?group_by=event"

            before = (await self._counts(session, counts))["total"]
            sent = await self._send(session, f"http://127.0.0.1:{web_port}{PATH}")
            accepted = sum(sent.values())
            self.say(f"Waiting until SurrealDB holds all {accepted} accepted events...")

            async def stored() -> dict[str, Any] | None:
                body = await self._counts(session, counts)
                return body if body["total"] >= before + accepted else None

            body = await self._until(stored, "the sink to store every event")
            self.say()
            self.say(f"{QUERY};")
            self.say(render_table(body["groups"], body["total"]))
            if before:
                self.say(f"  ({before} of them from earlier runs kept with --keep-data)")
            self.say()
            self._print_hints(web_port, counts)
            if o.once:
                return 0
            self.say("The pipeline keeps running: send more events with the curl above. Ctrl-C stops it.")
            await self._until(_never, "Ctrl-C", within=float("inf"))
        return 0

    async def _counts(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise DemoError(f"the sink's query API answered {resp.status}: {await resp.text()}")
            body: dict[str, Any] = await resp.json()
            return body

    async def _send(self, session: aiohttp.ClientSession, url: str) -> Counter[str]:
        """POST the events (bounded concurrency); returns the accepted ones per event type."""
        rng = random.Random(self.o.seed)
        events = [random_payment(rng) for _ in range(self.o.events)]
        accepted: Counter[str] = Counter()
        failed: list[str] = []
        done = 0
        bar = ProgressBar(len(events), self.out, label="Sending payment webhooks ")
        bar.update(0)
        limit = asyncio.Semaphore(self.o.concurrency)
        headers = {"x-api-key": API_KEY}

        async def post(event: dict[str, Any]) -> None:
            nonlocal done
            async with limit:
                for attempt in range(6):
                    async with session.post(url, json=event, headers=headers) as resp:
                        if resp.status in (429, 503) and attempt < 5:
                            wait = float(resp.headers.get("Retry-After", "0.2") or 0.2)
                            await asyncio.sleep(min(wait, 2.0))
                            continue
                        if 200 <= resp.status < 300:
                            accepted[event["event"]] += 1
                        else:
                            failed.append(f"{resp.status} {(await resp.text())[:200]}")
                        break
            done += 1
            bar.update(done)

        tasks = [asyncio.ensure_future(post(e)) for e in events]
        stopper: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
        together: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait([stopper, together], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.stop.is_set():
            raise _Interrupted()
        errors = [t.exception() for t in tasks if not t.cancelled() and t.exception() is not None]
        if errors:
            raise DemoError(f"sending failed: {errors[0]}")
        summary = ", ".join(f"{k} {v}" for k, v in sorted(accepted.items()))
        self.say(f"Accepted {sum(accepted.values())} of {len(events)} ({summary})")
        if failed:
            self.say(f"Rejected {len(failed)}: {failed[0]}")
        return accepted

    def _print_hints(self, web_port: int, counts_url: str) -> None:
        example = (
            '{"event": "payment.succeeded", "amount": 12345, "currency": "USD", "timestamp": 1705004567}'
        )
        self.say("Send another event:")
        self.say(f"  curl -X POST http://127.0.0.1:{web_port}{PATH} \\")
        self.say('    -H "Content-Type: application/json" \\')
        self.say(f'    -H "x-api-key: {API_KEY}" \\')
        self.say(f"    -d '{example}'")
        self.say("Count again (read-only query API of the sink, which owns the embedded store):")
        self.say(f"  curl '{counts_url}'")
        self.say(f"Logs: {self.o.data_dir / 'logs'}")

    # -- stopping ------------------------------------------------------------------------------------

    def stop_all(self) -> bool:
        """Stop children in order (source, sink, broker); True when every one exited 0."""
        clean = True
        order = {"webhook-source": 0, "surrealdb-sink": 1, "broker": 2}
        for svc in sorted(self.services, key=lambda s: order.get(s.name, 9)):
            was_running = svc.running
            code = svc.stop(timeout=40.0 if svc.name != "broker" else 15.0)
            if was_running and code != 0:
                clean = False
                self.say(f"{svc.name} exited with code {code} (log: {svc.log_path})")
        return clean


async def _never() -> bool:
    return False


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the exit code (0 ok or stopped by a signal, 1 failure)."""
    try:
        options = DemoOptions(
            **{**options.__dict__, "data_dir": prepare_data_dir(options.data_dir, options.keep_data)}
        )
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"demo: cannot prepare {options.data_dir}: {exc}", file=sys.stderr)
        return 1
    demo = Demo(options, out)

    async def main() -> int:
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if demo.signalled:
                return
            demo.signalled = True
            demo.say(f"\n{sig.name}: stopping the pipeline...")
            demo.stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await demo.run()
        except _Interrupted:
            return 0
        except (DemoError, MissingCommand) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1

    code = 1
    try:
        code = asyncio.run(main())
    finally:
        # Signals that arrive while stopping are ignored: the children are being stopped already.
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            clean = demo.stop_all()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    if code == 0 and not clean:
        return 1
    if demo.signalled and code == 0:
        demo.say("Stopped.")
    return code
