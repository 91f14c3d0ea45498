"""A real webhook receiver on 127.0.0.1 for the tests: a threaded HTTP server that records every
request (headers and body), answers with the status the test sets (or sleeps first), and verifies
signatures with the Standard Webhooks reference library."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook as Verifier


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class Receiver:
    port: int = 0
    status: int = 204
    delay: float = 0.0  # seconds before answering
    location: str | None = None  # a Location header (with a 3xx status: a redirect)
    reply: bytes | None = None  # the answer's body (default: empty, "not now" for a failure)
    requests: list[Received] = field(default_factory=list)  # every request, failed answers included
    accepted: list[Received] = field(default_factory=list)  # those answered with a 2xx
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verify_all(self, secret: str) -> None:
        """Every accepted request carries a valid signature (raises otherwise)."""
        verifier = Verifier(secret)
        for request in self.accepted:
            verifier.verify(request.body, request.headers)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [request.event for request in self.accepted]


@contextmanager
def run_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            request = Received({k.lower(): v for k, v in self.headers.items()}, body, self.path)
            status, delay = receiver.status, receiver.delay
            with receiver.lock:
                receiver.requests.append(request)
            if delay:
                time.sleep(delay)
            if 200 <= status < 300:
                with receiver.lock:
                    receiver.accepted.append(request)
            self.send_response(status)
            payload = receiver.reply if receiver.reply is not None else b"not now" if status >= 300 else b""
            if receiver.location:
                self.send_header("location", receiver.location)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    # A short poll: shutdown() waits for the loop's next turn (0.5 s by default, at every test's end).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
