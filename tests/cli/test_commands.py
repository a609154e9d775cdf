"""The `mailgrant` command as a user runs it: a real process, a fresh MAILGRANT_HOME."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

MAILGRANT = str(Path(sys.executable).with_name("mailgrant"))


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGRANT_", "DJANGO_"))}
    env.update(MAILGRANT_HOME=str(home), **extra)
    return env


def _run(home: Path, *args: str, input: str | None = None, **extra: str):
    return subprocess.run(
        [MAILGRANT, *args],
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )


def test_migrate_and_unattended_superuser(tmp_path: Path) -> None:
    migrated = _run(tmp_path, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "mailgrant.sqlite3").exists()
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    made = _run(
        tmp_path,
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
        DJANGO_SUPERUSER_PASSWORD="a-long-password-1",
    )
    assert made.returncode == 0, made.stderr
    assert "Superuser created" in made.stdout


def test_unknown_client_is_a_clear_error(tmp_path: Path) -> None:
    assert _run(tmp_path, "migrate", "--noinput").returncode == 0
    result = _run(tmp_path, "client", "token", "nope")
    assert result.returncode == 1
    assert "No OAuth client named 'nope'" in result.stderr
    usage = _run(tmp_path, "client")
    assert usage.returncode != 0 and "usage" in usage.stderr.lower()


def test_bad_base_url_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, "check", MAILGRANT_BASE_URL="ftp://nope")
    assert result.returncode != 0
    assert "MAILGRANT_BASE_URL must be an http(s) URL" in result.stderr


def server_processes(pid: int) -> str:
    """The command line of `pid`: `mailgrant serve` replaces itself with granian."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_serve_uses_the_production_server(tmp_path: Path) -> None:
    assert _run(tmp_path, "migrate", "--noinput").returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listen = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [MAILGRANT, "serve"],
        env=_env(tmp_path, MAILGRANT_LISTEN=listen),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://{listen}/admin/login/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("mailgrant serve did not answer")
                time.sleep(0.2)
        assert response.status_code == 200
        assert "granian" in server_processes(server.pid)
        css = httpx.get(f"http://{listen}/static/admin/css/base.css", timeout=5)
        assert css.status_code == 200  # whitenoise serves static files, no collectstatic step
        workers = _children(server.pid, "mailgrant.cli worker")
        assert len(workers) == 1  # the background worker runs beside the web server
    finally:
        server.terminate()
        server.wait(timeout=15)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "the worker outlived serve"


def _serve(home: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listen = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [MAILGRANT, "serve", *args],
        env=_env(home, MAILGRANT_LISTEN=listen),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return server, listen


def test_serve_stops_when_told_while_its_web_workers_boot(tmp_path: Path) -> None:
    """A SIGTERM that lands while granian's workers are still loading the application is
    swallowed by the handler they inherit from granian's main process: serve stops anyway,
    the worker that missed it killed after the kill timeout."""
    assert _run(tmp_path, "migrate", "--noinput").returncode == 0
    server, _ = _serve(tmp_path, "--no-worker")
    booting: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not _children(server.pid, "granian") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _children(server.pid, "granian"), "granian started no worker"
        booting = _children(server.pid, "granian")
        assert not _children(server.pid, "mailgrant.cli worker")  # --no-worker: none started
    finally:
        server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for pid in [server.pid, *booting]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail("mailgrant serve did not stop on SIGTERM")
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in booting) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in booting)


def _children(parent: int, needle: str) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == parent and needle in cmdline:
            found.append(int(status.parent.name))
    return found
