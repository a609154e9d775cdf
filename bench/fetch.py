"""Bulk IMAP fetch: mailgrant against raw imaplib, getmail6 and Debian's fetchmail.

Starts the test OpenID provider and a throwaway Dovecot on loopback, validates a generic
email-box client headlessly as alice, fills alice's INBOX (and pat's, for fetchmail) with N
messages of 1 KB to 200 KB (~20 KB mean, a third with a base64 attachment), then fetches it all
with each tool --runs times (action "keep"; every run writes to a folder of its own, and
nothing is deleted until the end):

  imaplib    XOAUTH2, UID FETCH BODY.PEEK[] of 200 UIDs a command, a plain file each, no sync,
             no parsing: the practical limit for a Python client, and the baseline
  mailgrant  mailbox_fetch() into a fresh store: written, synced and indexed batch by batch
  getmail6   XOAUTH2 (password_command prints the access token) into a Maildir
  fetchmail  Debian's, with a PASSWORD login as pat (it has no OAuth), a file per message

Reading it: min / median / max seconds over the runs (taken round-robin); msg/s and "x imaplib"
(median imaplib time / median tool time: 1.0 is as fast as raw imaplib) use the medians, "(of
min)" the same ratio of the fastest runs, steadier when the disk is busy. imaplib and mailgrant are
timed inside their child process from connect to last file (no interpreter or Django start-up);
getmail and fetchmail as whole commands. Peak RSS is each child's own VmHWM. mailgrant also
fetches N/10 messages (folder Small): its peak RSS should not grow with N. The machine is
shared: its load is printed before and after; trust the ratios more than the seconds.

    .venv/bin/python bench/fetch.py [--messages 5000] [--runs 3] [--profile]
"""

from __future__ import annotations

import argparse
import base64
import imaplib
import itertools
import json
import os
import pwd
import random
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ALICE, PAT, PAT_PASSWORD = "alice@example.test", "pat@example.test", "pat-password"
RESOURCE_SERVER = ("dovecot-resource-server", "dovecot-introspection-secret")
BATCH = 200
FETCHMAIL = "fetchmail (password login, no OAuth)"
NOTES = {
    "imaplib": "issue measured ~7,700 msg/s",
    "mailgrant": "target >= 0.5x imaplib, >= 20x getmail6",
    "getmail6": "issue measured ~120 msg/s",
    FETCHMAIL: "issue measured ~390 msg/s",
}
Run = Callable[[], tuple[float, float, int]]  # seconds, peak RSS MB, messages stored


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


# --- the mailbox ---------------------------------------------------------------------------


def message(n: int, rng: random.Random, user: str) -> bytes:
    """1 KB to 200 KB (log-normal, ~20 KB mean); every third one has a base64 attachment."""
    size = min(200_000, max(1_000, int(rng.lognormvariate(9.3, 1.1))))
    head = (
        f"Message-ID: <bench-{n}-{rng.getrandbits(32):08x}@example.test>\r\n"
        f"From: Sender {n % 97} <sender{n % 97}@example.test>\r\nTo: {user}\r\n"
        f"Subject: Bench message {n} =?utf-8?q?caf=C3=A9?=\r\n"
        "Date: Sat, 28 Nov 2026 06:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    )
    line = f"Line of message {n}: the quick brown fox jumps over the lazy dog.".ljust(76) + "\r\n"
    if n % 3 or size < 4_000:
        text = line * max(1, (size - len(head)) // len(line))
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode()
    payload = base64.encodebytes(rng.randbytes((size - 1_000) * 3 // 4)).replace(b"\n", b"\r\n")
    parts = (
        head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + line * 8 + "--b1\r\n"
        f'Content-Type: application/octet-stream; name="file{n}.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return parts.encode() + payload + b"--b1--\r\n"


def fill(lmtp_port: int, user: str, count: int) -> list[int]:
    """Deliver `count` messages over one LMTP connection (the same mail for every user)."""
    rng, sizes = random.Random(20261128), []
    with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=300) as lmtp:
        for n in range(count):
            raw = message(n, rng, user)
            lmtp.sendmail("sender@example.test", [user], raw)
            sizes.append(len(raw))
    return sizes


def imap_login(port: int, user: str, token: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=300)
    imap.authenticate("XOAUTH2", lambda _: f"user={user}\1auth=Bearer {token}\1\1".encode())
    return imap


def copy_to_folder(port: int, token: str, folder: str, count: int) -> None:
    imap = imap_login(port, ALICE, token)
    imap.create(folder)
    imap.select("INBOX")
    uids = imap.uid("SEARCH", "ALL")[1][0].split()[:count]
    if imap.uid("COPY", f"{uids[0].decode()}:{uids[-1].decode()}", folder)[0] != "OK":
        raise SystemExit(f"FAIL: could not copy {count} messages to {folder}")
    imap.logout()


def setup_mailgrant(home: Path, issuer: str, imap_port: int) -> tuple[int, int, str]:
    """Django on a temporary home and SQLite; a generic email-box client validated headlessly
    as alice (as tests/oauth/token_worker.py does); mailboxes on INBOX and Small."""
    os.environ.update(
        MAILGRANT_HOME=str(home),
        MAILGRANT_DATABASE_URL=f"sqlite:///{home / 'bench.sqlite3'}",
        DJANGO_SETTINGS_MODULE="mailgrant.config.settings",
        MAILGRANT_LOG_LEVEL="WARNING",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from tests.oauth.token_worker import setup
    from tests.servers.oidc import ACCOUNTS

    from mailgrant.mailboxes.models import Mailbox
    from mailgrant.mailboxes.services.mailboxes import mailbox_save
    from mailgrant.oauth.models import Grant
    from mailgrant.oauth.services.tokens import access_token_for

    grant = Grant.objects.get(pk=setup(issuer, ALICE, ACCOUNTS[ALICE]["password"])["grant"])
    ids = []
    for folder in ("INBOX", "Small"):
        mailbox = Mailbox(
            name=f"bench-{folder}", direction="incoming", protocol="imap", host="127.0.0.1",
            port=imap_port, security="none", username=ALICE, auth_method="oauth2",
            oauth_client=grant.client, grant=grant, sasl_mechanism="xoauth2", folder=folder,
            post_fetch_action="keep",
        )  # fmt: skip
        ids.append(mailbox_save(mailbox=mailbox).pk)
    return ids[0], ids[1], access_token_for(grant=grant).access_token


# --- the children (`fetch.py --child KIND JSON`: their peak RSS is their own) --------------


def child_mailgrant(mailbox_id: int, store: str, profile: bool) -> dict[str, Any]:
    os.environ["MAILGRANT_MESSAGE_STORE"] = store  # a folder of its own for each run
    import django

    django.setup()
    from mailgrant.mailboxes.models import Mailbox, Message
    from mailgrant.mailboxes.services.fetch import mailbox_fetch
    from mailgrant.mailboxes.store import store_root

    mailbox = Mailbox.objects.get(pk=mailbox_id)
    Message.objects.filter(mailbox=mailbox).delete()
    if profile:
        import cProfile
        import pstats

        with cProfile.Profile() as profiler:
            mailbox_fetch(mailbox=mailbox)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
        return {"seconds": 0, "count": 0, "rss": 0}
    start = time.perf_counter()
    result = mailbox_fetch(mailbox=mailbox)
    seconds = time.perf_counter() - start
    files = sum(1 for _ in store_root().rglob("*.eml"))
    count = min(files, Message.objects.filter(mailbox=mailbox).count(), result.fetched)
    return {"seconds": seconds, "count": count, "rss": vm_hwm("self")}


def child_imaplib(port: int, user: str, dest: str) -> dict[str, Any]:
    uid_item = re.compile(rb"UID (\d+)")
    start = time.perf_counter()
    imap = imap_login(port, user, os.environ["BENCH_TOKEN"])
    imap.select("INBOX")
    uids = imap.uid("SEARCH", "ALL")[1][0].split()
    for i in range(0, len(uids), BATCH):
        first, last = uids[i].decode(), uids[min(i + BATCH, len(uids)) - 1].decode()
        status, data = imap.uid("FETCH", f"{first}:{last}", "(BODY.PEEK[])")
        if status != "OK":
            raise SystemExit(f"UID FETCH failed: {data}")
        for item in data:
            if isinstance(item, tuple) and (m := uid_item.search(item[0])):
                with open(f"{dest}/{m.group(1).decode()}.eml", "wb") as handle:
                    handle.write(item[1])
    imap.logout()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "count": len(os.listdir(dest)), "rss": vm_hwm("self")}


# --- running and measuring -----------------------------------------------------------------


def vm_hwm(pid: int | str) -> float:
    """Peak RSS in MB of a live process: /proc VmHWM counts only its own image (ru_maxrss of a
    child would keep the big forking parent's peak across exec)."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return 0.0
    return int(found.group(1)) / 1024 if found else 0.0


def spawn(cmd: list[str], **popen: Any) -> tuple[float, float, str]:
    """Run `cmd`: wall seconds, peak RSS in MB (VmHWM, polled), output; fail loudly."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **popen)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, vm_hwm(proc.pid))
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(cmd[:3])} exited {proc.returncode}:\n{text[-3000:]}")
    return seconds, peak, text


def child(kind: str, *args: Any) -> tuple[float, float, int]:
    _, peak, text = spawn(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(args)]
    )
    *before, last = text.strip().splitlines()
    if before:
        print("\n".join(before))  # the profile, or warnings
    report = json.loads(last)
    return report["seconds"], max(peak, report["rss"]), report["count"]


_RUN_NUMBERS = itertools.count(1)


def fresh(parent: Path, name: str, *subs: str, owner: pwd.struct_passwd | None = None) -> Path:
    """A destination folder no run used before. Nothing is deleted until the end: on ext4
    without a journal (this machine's) creating a file right after thousands were deleted
    scans past each recently freed inode (perf: `recently_deleted` took 170 us an open), so
    emptying a folder before a run charged that run, and the next, for the deletion."""
    folder = parent / f"{name}-{next(_RUN_NUMBERS)}"
    for path in (folder, *(folder / s for s in subs)):
        path.mkdir()
        if owner:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return folder


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def getmail_run(tmp: Path, port: int, token: str) -> Run:
    getmail = Path(sys.executable).parent / "getmail"
    if not getmail.exists():
        print("getmail6 is not in the venv: installing it from PyPI (pip install getmail6)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "getmail6"], check=True)
    gdir = tmp / "getmail"
    # getmail refuses to deliver as root: there, its delivery processes run as nobody.
    nobody = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
    tmp.chmod(0o711)
    gdir.mkdir()
    (gdir / "token").write_text(token)
    (gdir / "token.sh").write_text(f"#!/bin/sh\ncat {gdir / 'token'}\n")
    (gdir / "token.sh").chmod(0o700)

    def run() -> tuple[float, float, int]:
        for stale in gdir.glob("oldmail-*"):
            stale.unlink()
        dest = fresh(tmp, "getmail-maildir", "cur", "new", "tmp", owner=nobody)
        (gdir / "getmailrc").write_text(
            f"[retriever]\ntype = SimpleIMAPRetriever\nserver = 127.0.0.1\nport = {port}\n"
            f"username = {ALICE}\nuse_xoauth2 = True\npassword_command = ('{gdir}/token.sh',)\n"
            f"mailboxes = ('INBOX',)\n\n[destination]\ntype = Maildir\npath = {dest}/\n"
            + (f"user = {nobody.pw_name}\n" if nobody else "")
            + "\n[options]\nverbose = 0\nread_all = true\ndelete = false\n"
        )
        cmd = [str(getmail), "--getmaildir", str(gdir), "--rcfile", "getmailrc", "--quiet"]
        seconds, peak, _ = spawn(cmd)
        return seconds, peak, count_files(dest)

    return run


def ensure_fetchmail() -> str | None:
    if not shutil.which("fetchmail") and os.geteuid() == 0:
        print("fetchmail is missing: apt-get install -y fetchmail")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "fetchmail"]
        if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run(install, env=env, stdout=subprocess.DEVNULL)
    if not shutil.which("fetchmail"):
        print("NOTE: fetchmail is not installed and this is not root: skipping it")
    return shutil.which("fetchmail")


def fetchmail_run(tmp: Path, port: int, fetchmail: str) -> Run:
    fdir = tmp / "fetchmail"
    fdir.mkdir()
    rc = fdir / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 service {port} protocol IMAP auth password\n"
        f'  user "{PAT}" there with password "{PAT_PASSWORD}"\n'
    )
    rc.chmod(0o600)

    def run() -> tuple[float, float, int]:
        dest = fresh(tmp, "fetchmail-files")
        cmd = [
            fetchmail, "--nodetach", "--fetchmailrc", str(rc), "--idfile", str(fdir / "ids"),
            "--pidfile", str(fdir / "pid"), "--keep", "--all", "--norewrite", "--nosyslog",
            "--sslproto", "", "--silent", "--mda", f'cat > "$(mktemp {dest}/msg.XXXXXXXX)"',
        ]  # fmt: skip
        seconds, peak, _ = spawn(cmd, env={**os.environ, "FETCHMAILHOME": str(fdir)})
        return seconds, peak, count_files(dest)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one more mailgrant run")
    parser.add_argument(
        "--only", action="append", metavar="TOOL",
        help="run only these tools (imaplib, mailgrant, getmail6, fetchmail); repeatable",
    )  # fmt: skip
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, params = args.child[0], json.loads(args.child[1])
        print(json.dumps({"mailgrant": child_mailgrant, "imaplib": child_imaplib}[kind](*params)))
        return

    from tests.servers.dovecot import DovecotServer, dovecot_available
    from tests.servers.oidc import OidcServer, oidc_available

    for ok, reason in (oidc_available(), dovecot_available()):
        if not ok:
            raise SystemExit(f"bench/fetch.py cannot run: {reason}")
    n, small = args.messages, max(1, args.messages // 10)
    print(f"bench/fetch.py: {n} messages, {args.runs} run(s) a tool; before: {load()}")
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="mg-bench-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        wanted = set(args.only or ["imaplib", "mailgrant", "getmail6", "fetchmail"]) | {"imaplib"}
        fetchmail = ensure_fetchmail() if "fetchmail" in wanted else None
        oidc = stack.enter_context(OidcServer(access_token_ttl=24 * 3600))  # fixed tokens below
        rs_id, rs_secret = RESOURCE_SERVER
        oidc.register_client(
            client_id=rs_id, client_secret=rs_secret, redirect_uris=["http://127.0.0.1:1/unused"]
        )
        basic = oidc.issuer.replace("http://", f"http://{rs_id}:{rs_secret}@")
        dovecot = stack.enter_context(
            DovecotServer(introspection_url=f"{basic}/token/introspection")
        )
        port = dovecot.imap_port
        inbox_id, small_id, token = setup_mailgrant(tmp / "home", oidc.issuer, port)
        os.environ["BENCH_TOKEN"] = token  # for the imaplib child

        started, users = time.perf_counter(), [ALICE, PAT] if fetchmail else [ALICE]
        with ThreadPoolExecutor() as pool:
            sizes, *_ = pool.map(lambda user: fill(dovecot.lmtp_port, user, n), users)
        copy_to_folder(port, token, "Small", small)
        print(
            f"filled {len(users)} INBOX(es) in {time.perf_counter() - started:.1f} s: "
            f"{sum(sizes) / 1e6:.1f} MB each, {sum(sizes) / n / 1e3:.1f} KB average, "
            f"{min(sizes) / 1e3:.1f} to {max(sizes) / 1e3:.1f} KB; {small} copied to Small"
        )

        writers = 2 + (fetchmail is not None) + ("getmail6" in wanted)
        needed = sum(sizes) * 1.1 * (writers + 0.1) * args.runs
        if shutil.disk_usage(tmp).free < needed:
            raise SystemExit(f"FAIL: {tmp} needs {needed / 1e9:.1f} GB free for the runs' files")

        def imaplib_run() -> tuple[float, float, int]:
            return child("imaplib", port, ALICE, str(fresh(tmp, "imaplib-files")))

        def mailgrant_run(mailbox_id: int, profile: bool = False) -> tuple[float, float, int]:
            return child("mailgrant", mailbox_id, str(fresh(tmp, "mailgrant-store")), profile)

        tools: list[tuple[str, int, Run | None]] = [
            ("imaplib", n, imaplib_run),
            ("mailgrant", n, lambda: mailgrant_run(inbox_id)),
            (f"mailgrant, {small} messages", small, lambda: mailgrant_run(small_id)),
            ("getmail6", n, getmail_run(tmp, port, token) if "getmail6" in wanted else None),
            (FETCHMAIL, n, fetchmail_run(tmp, port, fetchmail) if fetchmail else None),
        ]
        if "mailgrant" not in wanted:
            tools = [tool for tool in tools if not tool[0].startswith("mailgrant")]
        results: dict[str, list[tuple[float, float]]] = {}
        for i in range(args.runs):  # round-robin, so that a burst of noise hits every tool
            for name, expected, run in tools:
                if run is None:
                    continue
                os.sync()
                seconds, peak, got = run()
                if got != expected:
                    raise SystemExit(f"FAIL: {name} run {i + 1} stored {got} of {expected}")
                print(f"  {name:37} run {i + 1}: {seconds:7.2f} s {peak:7.1f} MB, {got} stored")
                results.setdefault(name, []).append((seconds, peak))
        if args.profile:
            print("\ncProfile of one more mailgrant run (cumulative):")
            mailgrant_run(inbox_id, profile=True)

    def median(name: str) -> float:
        return statistics.median(seconds for seconds, _ in results[name])

    def fastest(name: str) -> float:
        return min(seconds for seconds, _ in results[name])

    def peak(name: str) -> float:
        return max(rss for _, rss in results[name])

    print(f"\n{'tool':37} {'min s':>7} {'med s':>7} {'max s':>7} {'msg/s':>7} {'x imaplib':>9}"
          f" {'(of min)':>8} {'RSS MB':>7}")  # fmt: skip
    for name, expected, _ in tools:
        if name in results:
            slowest = max(seconds for seconds, _ in results[name])
            ratios = (
                f"{median('imaplib') / median(name):9.3f} {fastest('imaplib') / fastest(name):8.3f}"
            )
            print(
                f"{name:37} {fastest(name):7.2f} {median(name):7.2f} {slowest:7.2f} "
                f"{expected / median(name):7.0f} {ratios if expected == n else ' ' * 18} "
                f"{peak(name):7.1f}  {NOTES.get(name, '')}"
            )
    if "getmail6" in results and "mailgrant" in results:
        print(
            f"\nmailgrant is {median('getmail6') / median('mailgrant'):.1f}x as fast as getmail6 "
            "(target >= 20x)"
        )
    if "mailgrant" in results:
        print(
            f"mailgrant's peak RSS: {peak(f'mailgrant, {small} messages'):.1f} MB for {small} "
            f"messages, {peak('mailgrant'):.1f} MB for {n} (target: the same, flat)"
        )
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
