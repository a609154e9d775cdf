"""A tiny forward HTTP proxy on a real loopback socket that asks for Basic credentials
(Proxy-Authorization), records what came through it and relays to the origin: what a
corporate proxy in front of the provider is, and no local peer is."""

from __future__ import annotations

import base64
import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Relayed:
    method: str
    url: str
    proxy_authorization: str
    status: int


class AuthProxy:
    def __init__(self, *, user: str, password: str) -> None:
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[Relayed] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._relay(self, "GET")

            def do_POST(self) -> None:
                proxy._relay(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> AuthProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _relay(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        given = handler.headers.get("Proxy-Authorization", "")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if given != self.expected:
            self.requests.append(Relayed(method, handler.path, given, 407))
            handler.send_response(407)
            handler.send_header("Proxy-Authenticate", 'Basic realm="test"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        target = urlsplit(handler.path)  # absolute form: http://host:port/path?query
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in {"proxy-authorization", "proxy-connection", "connection"}
        }
        origin = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=15)
        try:
            origin.request(method, path or "/", body=body or None, headers=headers)
            answer = origin.getresponse()
            payload = answer.read()
        finally:
            origin.close()
        self.requests.append(Relayed(method, handler.path, given, answer.status))
        handler.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
