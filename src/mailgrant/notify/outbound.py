"""POSTing a webhook: a timeout, no redirect followed, the answer read up to a cap, and no
private, loopback, link-local or otherwise non-global address unless allowed.

The address rule is enforced where the socket is made (`GuardedBackend`): the name is resolved
once, each address checked, and the connection made to that checked address (TLS still names
the host, for SNI and the certificate), so a DNS answer that changes between the check and the
connect (rebinding) cannot point a delivery at the inside. Django-free: settings come in as
arguments."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

ANSWER_CAP = 64 * 1024
HEAD_CAP = 1024
SCHEMES = ("http", "https")


class AddressRefused(httpcore.ConnectError):
    """The destination is an address webhooks may not reach."""


@dataclass(frozen=True)
class PostResult:
    """What one POST got: the status (None when no answer came), how long it took, the first
    bytes of the answer (at most ANSWER_CAP), why it failed, and the headers an outcome needs."""

    status: int | None
    duration: float
    head: bytes = b""
    error: str = ""
    location: str = ""
    retry_after: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether a delivery may connect to `address` (an IP literal)."""
    if allow_private:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def _refusal(host: str, addresses: Iterable[str]) -> str:
    listed = ", ".join(addresses)
    return (
        f"{host} resolves to {listed}: a private, loopback, link-local or otherwise "
        "non-public address, which webhooks may not reach (MAILGRANT_WEBHOOK_ALLOW_PRIVATE "
        "allows it)"
    )


def destination_problem(url: str, *, allow_private: bool) -> str:
    """Why `url` cannot take deliveries (its scheme, its host, the addresses it resolves to),
    or "" when it can."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        return f"The URL cannot be read ({exc})."
    if parts.scheme not in SCHEMES:
        return "A webhook URL starts with https:// (or http://)."
    host = parts.hostname or ""
    if not host:
        return "The URL has no host."
    if parts.username or parts.password:
        return "A webhook URL carries no user name or password: the signature authenticates."
    if allow_private:
        return ""
    try:
        addresses = _resolve(host, port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError) as exc:
        return f"{host} does not resolve ({exc})."
    refused = [a for a in addresses if not address_allowed(a, allow_private=False)]
    if refused:
        return _refusal(host, refused) + "."
    return ""


class GuardedBackend(httpcore.SyncBackend):
    """Connects only to the addresses the rule allows, resolving each name once."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = _resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve ({exc})") from exc
        allowed = [a for a in addresses if address_allowed(a, allow_private=self.allow_private)]
        if not allowed:
            raise AddressRefused(_refusal(host, addresses))
        last: Exception | None = None
        for address in allowed:
            try:
                stream = super().connect_tcp(
                    address, port, timeout, local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if peer and not address_allowed(str(peer[0]), allow_private=self.allow_private):
                stream.close()
                raise AddressRefused(_refusal(host, [str(peer[0])]))
            return stream
        assert last is not None
        raise last


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport, its connection pool making every connection through GuardedBackend."""

    def __init__(self, *, allow_private: bool, max_connections: int = 100) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=50)
        super().__init__(verify=True, trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private),
        )


_clients: dict[bool, httpx.Client] = {}
_clients_lock = threading.Lock()


def webhook_client(*, allow_private: bool) -> httpx.Client:
    """The process's client for deliveries (thread-safe, keep-alive per destination)."""
    with _clients_lock:
        client = _clients.get(allow_private)
        if client is None:
            client = httpx.Client(
                transport=GuardedTransport(allow_private=allow_private),
                follow_redirects=False,
                trust_env=False,
            )
            _clients[allow_private] = client
        return client


def webhook_post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    allow_private: bool,
    cap: int = ANSWER_CAP,
) -> PostResult:
    """POST `body` to `url`; never raises for what the destination does."""
    client = webhook_client(allow_private=allow_private)
    started = time.monotonic()
    deadline = started + timeout
    status: int | None = None
    head = bytearray()
    location = retry_after = ""
    try:
        with client.stream(
            "POST", url, content=body, headers=dict(headers), timeout=httpx.Timeout(timeout)
        ) as response:
            status = response.status_code
            location = response.headers.get("location", "")
            retry_after = response.headers.get("retry-after", "")
            # Raw bytes, never decoded: a small gzip answer cannot inflate past the cap.
            for chunk in response.iter_raw(16 * 1024):
                head += chunk[: cap - len(head)]
                if len(head) >= cap or time.monotonic() > deadline:
                    break  # the rest is not read: closing drops the connection
    except httpx.TimeoutException:
        if status is None:
            return _failed(started, f"timeout: no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        if isinstance(exc.__cause__, AddressRefused):  # httpx wraps the backend's error
            return _failed(started, f"refused: {exc.__cause__}")
        if status is None:
            return _failed(started, f"{_kind(exc)}: {exc}" if str(exc) else _kind(exc))
    except OSError as exc:
        return _failed(started, f"connect: {exc}")
    duration = time.monotonic() - started
    error = ""
    if 300 <= status < 400:  # type: ignore[operator]
        error = f"redirect to {location[:500] or '(no Location)'}: redirects are not followed"
    elif not 200 <= status < 300:  # type: ignore[operator]
        error = f"HTTP {status}"
    return PostResult(
        status=status,
        duration=duration,
        head=bytes(head),
        error=error,
        location=location[:2000],
        retry_after=retry_after[:200],
    )


def _kind(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    return type(exc).__name__


def _failed(started: float, error: str) -> PostResult:
    return PostResult(status=None, duration=time.monotonic() - started, error=error[:1000])
