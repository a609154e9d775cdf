"""A fake provider endpoint on a real loopback socket, for what no local peer can be: Google's
and Microsoft's own answers (AADSTS error bodies, a refresh without a refresh token).

Each route answers from a queue of canned responses (the last one repeats) and every request
is recorded, so a test can assert exactly what mailgrant sent."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Canned:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # A slow provider: the answer waits until `release` is set, or `slow_seconds` at most.
    release: threading.Event | None = None
    slow_seconds: float = 15.0


class FakeProvider:
    def __init__(self, *, tls: bool = False) -> None:
        self.routes: dict[str, list[Canned]] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:  # a self-signed certificate: what verify_ssl exists for
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self_signed_certificate())
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def answer(self, path: str, *responses: Canned | dict[str, Any]) -> None:
        """Queue responses for `path`; the last one keeps answering."""
        with self._lock:
            self.routes[path] = [r if isinstance(r, Canned) else Canned(body=r) for r in responses]

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(
                Recorded(
                    method, parts.path, parse_qs(parts.query), dict(handler.headers.items()), body
                )
            )
            queue = self.routes.get(parts.path)
            canned = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Canned(404, {})
        payload = (
            canned.body if isinstance(canned.body, bytes) else json.dumps(canned.body).encode()
        )
        if canned.release is not None:
            canned.release.wait(canned.slow_seconds)
        handler.send_response(canned.status)
        content_type = canned.headers.get("Content-Type", "application/json")
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in canned.headers.items():
            if name != "Content-Type":
                handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)


# Microsoft identity platform's error bodies, as documented (shape and AADSTS codes).
def aadsts_error(error: str, code: int, text: str) -> Canned:
    return Canned(
        status=400 if error != "invalid_client" else 401,
        body={
            "error": error,
            "error_description": f"AADSTS{code}: {text}\r\n"
            "Trace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333"
            "\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd"
            "\r\nTimestamp: 2026-11-28 06:00:00Z",
            "error_codes": [code],
            "timestamp": "2026-11-28 06:00:00Z",
            "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
            "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


GOOGLE_INVALID_GRANT = Canned(
    400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
)


def self_signed_certificate() -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tempfile.mkdtemp(prefix="mailgrant-fake-tls-")
    cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path
