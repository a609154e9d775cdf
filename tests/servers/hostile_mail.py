"""Hostile IMAP and POP3 servers on real loopback sockets, for what Dovecot never does: claim a
size and send far more, announce a literal of 100 GB, list junk, break off mid-reply.

Each serves one scripted mailbox (password logins accepted) and records the commands it
received and how many message bytes it got out, so a test can assert what mailgrant read, what
it left on the server and that it did not act on a message it never stored. No Django here."""

from __future__ import annotations

import contextlib
import re
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

CHUNK = b"x" * 76 + b"\r\n"
BLOCK = CHUNK * 800  # about 62 KiB, allocated once: the servers' sending costs no memory


@dataclass
class FakeMessage:
    uid: int
    raw: bytes = b""
    claimed: int | None = None  # the size the server lists (default: the real one)
    # A liar: announce this many bytes (IMAP literal; POP3 ignores it) and send `flood` bytes.
    announced: int | None = None
    flood: int = 0

    @property
    def listed(self) -> int:
        return len(self.raw) if self.claimed is None else self.claimed


def message(uid: int) -> FakeMessage:
    raw = (
        f"Message-ID: <hostile-{uid}@example.test>\r\nFrom: a@example.test\r\n"
        f"To: b@example.test\r\nSubject: message {uid}\r\n\r\nbody {uid}\r\n"
    ).encode()
    return FakeMessage(uid=uid, raw=raw)


@dataclass
class _Server:
    messages: list[FakeMessage] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    flooded: int = 0  # message bytes a liar got out before the client hung up

    def __post_init__(self) -> None:
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 30

            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client hung up, as a refusing one does
                    owner._session(self.rfile, self.wfile)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()

    def _flood(self, out: Any, size: int) -> None:
        sent = 0
        while sent < size:
            block = BLOCK[: size - sent]
            out.write(block)
            sent += len(block)
            self.flooded += len(block)
        out.flush()

    def _session(self, rfile: Any, wfile: Any) -> None:
        raise NotImplementedError

    def saw(self, command: str) -> list[str]:
        return [c for c in self.commands if c.upper().startswith(command.upper())]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _uids(text: str) -> set[int]:
    found: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition(":")
        found.update(range(int(first), int(last or first) + 1))
    return found


@dataclass
class HostileImap(_Server):
    uidvalidity: str = "7"
    break_off_in: str = ""  # "SELECT" or "FETCH": close the connection half-way through it
    uid_last: bool = False  # name a message's UID after its body (RFC 3501 allows any order)

    def _session(self, rfile: Any, wfile: Any) -> None:
        def say(*lines: str) -> None:
            wfile.write("".join(f"{line}\r\n" for line in lines).encode())
            wfile.flush()

        say("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS] hostile IMAP ready")
        while line := rfile.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(text.split(" ", 1)[1] if " " in text else text)
            tag, _, rest = text.partition(" ")
            verb = rest.split(" ", 1)[0].upper()
            if verb == "CAPABILITY":
                say("* CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS", f"{tag} OK done")
            elif verb == "LOGIN":
                say(f"{tag} OK logged in")
            elif verb == "SELECT":
                say(f"* {len(self.messages)} EXISTS")
                if self.break_off_in == "SELECT":
                    return
                say(f"* OK [UIDVALIDITY {self.uidvalidity}] UIDs valid", f"{tag} OK [READ-WRITE]")
            elif rest.upper().startswith("UID FETCH 1:* (UID RFC822.SIZE)"):
                for n, m in enumerate(self.messages, 1):
                    say(f"* {n} FETCH (UID {m.uid} RFC822.SIZE {m.listed})")
                say(f"{tag} OK fetched")
            elif rest.upper().startswith("UID FETCH"):
                wanted = _uids(rest.split(" ")[2])
                for n, m in enumerate(self.messages, 1):
                    if m.uid not in wanted:
                        continue
                    size = len(m.raw) if m.announced is None else m.announced
                    head = (
                        f"BODY[] {{{size}}}" if self.uid_last else f"UID {m.uid} BODY[] {{{size}}}"
                    )
                    wfile.write(f"* {n} FETCH ({head}\r\n".encode())
                    if self.break_off_in == "FETCH":
                        wfile.write(m.raw[: len(m.raw) // 2])
                        wfile.flush()
                        return
                    if m.announced is None:
                        wfile.write(m.raw)
                    else:
                        self._flood(wfile, min(m.flood, size))
                    wfile.write(f" UID {m.uid})\r\n".encode() if self.uid_last else b")\r\n")
                say(f"{tag} OK fetched")
            elif verb == "LOGOUT":
                say("* BYE see you", f"{tag} OK bye")
                return
            else:  # STORE, MOVE, EXPUNGE...: recorded, agreed to
                say(f"{tag} OK done")


@dataclass
class HostilePop3(_Server):
    # Raw lines to answer LIST / UIDL with instead of the messages' own.
    list_lines: list[str] | None = None
    uidl_lines: list[str] | None = None

    def _session(self, rfile: Any, wfile: Any) -> None:
        def say(*lines: str) -> None:
            wfile.write("".join(f"{line}\r\n" for line in lines).encode())
            wfile.flush()

        say("+OK hostile POP3 ready")
        while line := rfile.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(text)
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if verb == "CAPA":
                say("+OK", "USER", "UIDL", ".")
            elif verb in ("USER", "PASS", "DELE", "NOOP"):
                say("+OK")
            elif verb == "LIST":
                own = [f"{n} {m.listed}" for n, m in enumerate(self.messages, 1)]
                say("+OK", *(own if self.list_lines is None else self.list_lines), ".")
            elif verb == "UIDL":
                own = [f"{n} uid-{m.uid}" for n, m in enumerate(self.messages, 1)]
                say("+OK", *(own if self.uidl_lines is None else self.uidl_lines), ".")
            elif verb == "RETR":
                m = self.messages[int(arg) - 1]
                wfile.write(b"+OK\r\n")
                if m.flood:
                    self._flood(wfile, m.flood)
                else:
                    wfile.write(re.sub(rb"(?m)^\.", b"..", m.raw))
                say(".")
            elif verb == "QUIT":
                say("+OK bye")
                return
            else:
                say("-ERR unknown command")
