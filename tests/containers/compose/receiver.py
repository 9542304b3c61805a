"""HTTP receiver of tests/containers/compose/mqtt-http.yml: keeps every POSTed JSON body in memory.

POST /ingest  -> 200, the body is appended        GET /received -> {"bodies": [...]} in arrival order
Standard library only (runs on the local Python base image).
"""

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

bodies: list[object] = []
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(data)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        with lock:
            bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path != "/received":
            self.send_response(404)
            self.end_headers()
            return
        with lock:
            payload = json.dumps({"bodies": bodies}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


# PID 1 in its container: without a handler SIGTERM would be ignored and `compose down` would wait
# for its timeout, then SIGKILL.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
