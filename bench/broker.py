"""Token broker: POST /api/v1/grants/{id}/access-token under load, against a bare endpoint.

Sets up its own MAILGRANT_HOME with the default SQLite database (what `make run` uses), a
generic email-box client whose grant holds an access token valid for a day (no provider is
needed: the broker serves it from the database), and an API key with the `tokens` scope. Then
starts `mailgrant serve` (granian, WSGI, 2 workers, --blocking-threads 4, as the README serves;
--no-poll, there are no mailboxes) on a free loopback port and drives it with Debian's wrk at 32
connections (2 wrk threads), after a warm-up of each endpoint:

  bare    GET /api/v1/health: no key, no database; the server's and framework's own cost, the
          baseline
  broker  POST /api/v1/grants/{id}/access-token with the key and {"min_valid_seconds": 60}:
          the cached token, checked (key, scope, client enabled, grant state, expiry), an audit
          row written and the key's last use noted on every call

Reading it: each endpoint runs --runs times, round-robin, so that a burst of noise from the
shared machine hits both. requests/s shows min / median / max over the runs; p50 and p99 are
wrk's per-request latencies, the median over the runs (p99 max: the worst run). "ratio b/a" is
the median broker requests/s over the median bare requests/s ("of max": the best runs'), the
number to trust more than the absolute figures: 1.0 would mean the broker costs nothing beyond
the framework. Targets (issue 4): ratio >= 0.5 and broker p99 < 25 ms. "CPU us" is the CPU time
the granian processes spent per answer (from /proc, median over the runs) and "CPU ratio" the
bare endpoint's over the broker's: what each answer costs the server, steadier than requests/s
when other work shares the machine (wrk, and whatever else runs). Any non-2xx answer, or fewer
audit rows than broker answers, fails the run. The load average is printed before and after:
2 cores serve, and wrk shares them.

--profile then samples the granian workers with py-spy during one more broker run and prints
the frames where the time goes (own time, and time inside, as % of the samples).

    .venv/bin/python bench/broker.py [--runs 3] [--seconds 8] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS, WRK_THREADS = 32, 2
MIN_VALID = 60
NOTES = {
    "bare": "issue measured ~7,000 req/s (granian, 2 workers)",
    "broker": "target: ratio >= 0.5, p99 < 25 ms (naive: ~1,380 req/s, ratio 0.2)",
}

# wrk reports through done(): requests, errors and latency percentiles (microseconds) as JSON.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nREPORT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_wrk() -> str:
    if not shutil.which("wrk") and os.geteuid() == 0:
        print("wrk is missing: apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run(install, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench/broker.py needs wrk (Debian: apt-get install wrk), as root")
    return found


def ensure_py_spy() -> str:
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("py-spy is not in the venv: installing it from PyPI (pip install py-spy)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(py_spy)


# --- the data ------------------------------------------------------------------------------


def setup_mailgrant(home: Path) -> tuple[int, str]:
    """Migrate a fresh SQLite database; a client, its grant with a token valid for a day, and
    an API key with the tokens scope. Returns the grant's id and the key."""
    os.environ.update(
        MAILGRANT_HOME=str(home),
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
        MAILGRANT_LOG_LEVEL="WARNING",
    )
    for inherited in ("MAILGRANT_DATABASE_URL", "MAILGRANT_VAULT_KEYS"):
        os.environ.pop(inherited, None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from datetime import UTC, datetime

    from django.db import connections

    from mailgrant.api.services import apikey_create
    from mailgrant.oauth.models import Grant, OAuthClient
    from mailgrant.oauth.protocol import TokenSet
    from mailgrant.oauth.services.clients import oauth_client_save

    client = oauth_client_save(
        client=OAuthClient(
            name="bench",
            provider="generic",
            client_id="bench-client",
            authorize_url="https://provider.invalid/authorize",
            token_url="https://provider.invalid/token",
        ),
        client_secret="bench-client-secret",
    )
    now = time.time()
    tokens = TokenSet(
        access_token="bench-access-token-" + "x" * 1200,  # the size of a real Microsoft JWT
        refresh_token="bench-refresh-token",
        expires_at=now + 86400,
        obtained_at=now,
        scope="https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    )
    grant = Grant.objects.create(
        client=client,
        is_default=True,
        account="bench@example.test",
        state=Grant.State.AUTHORIZED,
        token_set=tokens.to_dict(),
        original_token_set=tokens.to_dict(),
        scope=tokens.scope,
        expires_at=datetime.fromtimestamp(now + 86400, tz=UTC),
        authorized_at=datetime.now(tz=UTC),
    )
    _, key = apikey_create(name="bench-broker", scopes=["tokens"])
    connections.close_all()
    return grant.pk, key


def issued_count() -> int:
    from mailgrant.common.models import AuditEvent

    return AuditEvent.objects.filter(action="grant.token_issued").count()


def key_last_used() -> Any:
    from mailgrant.api.models import ApiKey

    return ApiKey.objects.get(name="bench-broker").last_used_at


# --- the server and the load ---------------------------------------------------------------


class Server:
    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (home / "serve.log").open("wb")
        mailgrant = str(Path(sys.executable).parent / "mailgrant")
        cmd = [mailgrant, "serve", "--listen", f"127.0.0.1:{self.port}", "--no-poll"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.home = home

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"mailgrant serve exited {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.fail("mailgrant serve did not answer in 60 s")

    def fail(self, why: str) -> None:
        self.log.flush()
        tail = (self.home / "serve.log").read_text("utf-8", "replace")[-3000:]
        raise SystemExit(f"FAIL: {why}:\n{tail}")

    def stop(self) -> None:
        if self.log.closed:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def check_broker_answer(base: str, path: str, key: str) -> None:
    """One call by hand: the answer's shape and headers, before timing anything."""
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps({"min_valid_seconds": MIN_VALID}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = json.loads(answer.read())
        cache_control = answer.headers.get("Cache-Control")
    if set(body) != {"access_token", "token_type", "expires_at", "scope"} or not body[
        "access_token"
    ].startswith("bench-access-token-"):
        raise SystemExit(f"FAIL: unexpected broker answer {sorted(body)}")
    if cache_control != "no-store":
        raise SystemExit(f"FAIL: broker answered Cache-Control {cache_control!r}")


def wrk_scripts(folder: Path, key: str) -> dict[str, Path]:
    bare = folder / "bare.lua"
    bare.write_text(WRK_REPORT)
    broker = folder / "broker.lua"
    broker.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{json.dumps({'min_valid_seconds': MIN_VALID})}'\n" + WRK_REPORT
    )
    broker.chmod(0o600)
    return {"bare": bare, "broker": broker}


def server_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and its descendants (the granian workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    return sum(times.get(pid, 0.0) for pid in tree)


def wrk(binary: str, url: str, script: Path, seconds: int) -> dict[str, Any]:
    cmd = [
        binary, f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    report = next((line for line in done.stdout.splitlines() if line.startswith("REPORT ")), "")
    if done.returncode or not report:
        raise SystemExit(f"FAIL: wrk exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(report.removeprefix("REPORT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


# --- the profile ---------------------------------------------------------------------------


def profile(py_spy: str, server: Server, run: Any, folder: Path, seconds: int) -> None:
    """py-spy samples the granian workers while `run` loads the broker; frames summarised."""
    raw = folder / "profile.txt"
    cmd = [
        py_spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--rate", "250",
        "--duration", str(seconds + 1), "--format", "raw", "--output", str(raw),
        "--nonblocking",
    ]  # fmt: skip
    recorder = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    result = run()
    _, err = recorder.communicate(timeout=seconds + 60)
    if not raw.exists():
        raise SystemExit(f"FAIL: py-spy wrote no profile: {err.decode(errors='replace')[-2000:]}")
    print(f"\npy-spy during one more broker run ({result['rps']:.0f} req/s while sampled):")
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [shorten(f) for f in stack.split(";") if f.strip() and "(" in f]
        if not frames:
            continue
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inside[frame] += int(count)
    if not total:
        raise SystemExit("FAIL: py-spy sampled nothing")
    print(f"  {total} samples of Python frames; own time (the frame itself was running):")
    for frame, count in own.most_common(20):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("  time inside (the frame or what it called), mailgrant's and the framework's:")
    wanted = ("mailgrant/", "ninja/", "django/", "cryptography/", "pydantic/")
    shown = [(f, c) for f, c in inside.most_common() if any(w in f for w in wanted)]
    for frame, count in shown[:30]:
        print(f"  {100 * count / total:5.1f}%  {frame}")


def shorten(frame: str) -> str:
    """'func (/long/path/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py:12)'."""
    name, _, where = frame.strip().partition(" (")
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where}"


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="per run and endpoint")
    parser.add_argument("--warmup", type=int, default=4, help="seconds per endpoint")
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s (a smoke test)")
    parser.add_argument("--profile", action="store_true", help="py-spy one more broker run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds, args.warmup = 1, 3, 1
    wrk_binary = ensure_wrk()
    py_spy = ensure_py_spy() if args.profile else ""
    print(
        f"bench/broker.py: wrk -t{WRK_THREADS} -c{CONNECTIONS}, {args.runs} run(s) of "
        f"{args.seconds} s an endpoint; before: {load()}"
    )
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="mg-bench-broker-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        grant_id, key = setup_mailgrant(tmp / "home")
        server = Server(tmp / "home")
        stack.callback(server.stop)
        server.wait()
        paths = {"bare": "/api/v1/health", "broker": f"/api/v1/grants/{grant_id}/access-token"}
        check_broker_answer(server.base, paths["broker"], key)
        scripts = wrk_scripts(tmp, key)
        answered = {"bare": 0, "broker": 1}  # the call by hand above

        def run(name: str, seconds: int) -> dict[str, Any]:
            cpu = server_cpu_seconds(server.proc.pid)
            result = wrk(wrk_binary, server.base + paths[name], scripts[name], seconds)
            cpu = server_cpu_seconds(server.proc.pid) - cpu
            result["cpu_us"] = cpu / result["requests"] * 1e6
            answered[name] += result["requests"]
            if result["non_2xx"] or result["socket_errors"]:
                raise SystemExit(
                    f"FAIL: {name}: {result['non_2xx']} non-2xx answers, "
                    f"{result['socket_errors']} socket errors of {result['requests']}:\n"
                    + (server.home / "serve.log").read_text("utf-8", "replace")[-3000:]
                )
            return result

        for name in paths:
            run(name, args.warmup)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
        for i in range(args.runs):
            for name in paths:
                result = run(name, args.seconds)
                results[name].append(result)
                print(
                    f"  {name:7} run {i + 1}: {result['rps']:8.0f} req/s  p50 "
                    f"{result['p50_us'] / 1000:6.2f} ms  p99 {result['p99_us'] / 1000:6.2f} ms  "
                    f"max {result['max_us'] / 1000:7.2f} ms  server CPU "
                    f"{result['cpu_us']:4.0f} us/request"
                )
        if args.profile:
            profile(py_spy, server, lambda: run("broker", args.seconds), tmp, args.seconds)
        # The serving processes spool the broker's audit rows and move them into the table
        # every second (mailgrant.common.audit_spool): give them the time to.
        deadline = time.monotonic() + 15
        while issued_count() < answered["broker"] and time.monotonic() < deadline:
            time.sleep(0.2)
        server.stop()
        rows, last_used = issued_count(), key_last_used()

    # Requests still in flight when wrk stops are answered (and audited) but not counted.
    if not answered["broker"] <= rows <= answered["broker"] + CONNECTIONS * (args.runs + 2):
        raise SystemExit(f"FAIL: {rows} audit rows for {answered['broker']} broker answers")
    print(
        f"\n{answered['broker']} broker answers, {rows} grant.token_issued audit rows, "
        f"0 non-2xx; key last used {last_used:%H:%M:%S.%f}"
    )

    def rps(name: str) -> list[float]:
        return [r["rps"] for r in results[name]]

    def median_ms(name: str, field: str) -> float:
        return statistics.median(r[field] for r in results[name]) / 1000

    def cpu_us(name: str) -> float:
        return statistics.median(r["cpu_us"] for r in results[name])

    print(
        f"\n{'endpoint':8} {'min':>7} {'median':>7} {'max':>7} req/s  {'p50 ms':>6} "
        f"{'p99 ms':>6} {'(max)':>6} {'CPU us':>6}"
    )
    for name in paths:
        worst = max(r["p99_us"] for r in results[name]) / 1000
        print(
            f"{name:8} {min(rps(name)):7.0f} {statistics.median(rps(name)):7.0f} "
            f"{max(rps(name)):7.0f}        {median_ms(name, 'p50_us'):6.2f} "
            f"{median_ms(name, 'p99_us'):6.2f} {worst:6.2f} {cpu_us(name):6.0f}  {NOTES[name]}"
        )
    ratio = statistics.median(rps("broker")) / statistics.median(rps("bare"))
    best = max(rps("broker")) / max(rps("bare"))
    p99 = median_ms("broker", "p99_us")
    verdict = "met" if ratio >= 0.5 and p99 < 25 else "NOT met"
    print(
        f"\nratio b/a {ratio:.2f} (of max {best:.2f}; CPU ratio "
        f"{cpu_us('bare') / cpu_us('broker'):.2f}); broker p99 {p99:.2f} ms; "
        f"target ratio >= 0.5 and p99 < 25 ms: {verdict}"
    )
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
