"""A webhook receiver on a loopback socket for the tests: each path answers as it is told (ok,
500 a few times, a status, a redirect, a hang, an endless body) and every request that carries
a signature is verified with the `standardwebhooks` library, never with mailgrant's code."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

Behaviour = Callable[[BaseHTTPRequestHandler, int], None]


@dataclass
class Received:
    path: str
    id: str
    headers: dict[str, str]
    body: bytes
    payload: Any
    at: float


def answer(status: int, body: bytes = b"ok", headers: dict[str, str] | None = None) -> Behaviour:
    def behave(handler: BaseHTTPRequestHandler, n: int) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behave


def fail_first(times: int, status: int = 500) -> Behaviour:
    """`status` to the first `times` requests, then 200."""

    def behave(handler: BaseHTTPRequestHandler, n: int) -> None:
        answer(status if n <= times else 200, b"nope" if n <= times else b"ok")(handler, n)

    return behave


def hang(release: threading.Event) -> Behaviour:
    """No answer until `release` is set (bounded, so a failed test cannot hang the run)."""

    def behave(handler: BaseHTTPRequestHandler, n: int) -> None:
        release.wait(120)
        answer(200)(handler, n)

    return behave


def endless(sent: list[int], size: int = 1 << 30) -> Behaviour:
    """A 200 of `size` bytes (1 GB), made as it is written; what was written is in `sent`."""

    def behave(handler: BaseHTTPRequestHandler, n: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        chunk = b"x" * 65536
        written = 0
        try:
            while written < size:
                handler.wfile.write(chunk)
                written += len(chunk)
        except OSError:
            pass  # the client stopped reading: what it should do
        finally:
            sent.append(written)
        handler.close_connection = True

    return behave


@dataclass
class Receiver:
    """Paths -> behaviour and signing secret; what came in, in order."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    cut: int = 0  # requests whose sender was cut off mid-body
    hits: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender was cut off mid-body (a worker killed as it sent): no request
                    # arrived, as any HTTP server would take it, not a bad signature.
                    with receiver.lock:
                        receiver.cut += 1
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path
                payload: Any = None
                secret = receiver.secrets.get(path)
                if secret:
                    try:
                        payload = Webhook(secret).verify(body, headers)
                    except WebhookVerificationError as exc:
                        with receiver.lock:
                            receiver.rejected.append(f"{path}: {exc}")
                        answer(400, b"bad signature")(self, 0)
                        return
                with receiver.lock:
                    receiver.hits[path] += 1
                    n = receiver.hits[path]
                    receiver.received.append(
                        Received(
                            path=path,
                            id=headers.get("webhook-id", ""),
                            headers=headers,
                            body=body,
                            payload=payload,
                            at=time.time(),
                        )
                    )
                receiver.behaviours.get(path, answer(200))(self, n)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]
