"""A hostile server on a real loopback socket that greets like a mail or directory server and
records every byte it is sent: where a retargeted mailbox or directory would send its secret."""

from __future__ import annotations

import base64
import binascii
import socket
import threading


class Listener:
    def __init__(self, *, greeting: bytes = b"", hang_up: bool = False) -> None:
        """`greeting` is sent first (an IMAP one makes it answer enough IMAP); `hang_up`
        closes the connection after the first thing received (an LDAP bind, say)."""
        self.greeting = greeting
        self.hang_up = hang_up
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            try:
                if self.greeting:
                    conn.sendall(self.greeting)
                while chunk := conn.recv(65536):
                    with self._lock:
                        self.received.extend(chunk)
                    if self.hang_up:
                        return
                    for line in chunk.split(b"\r\n"):
                        tag = line.split(b" ", 1)[0]
                        if tag and self.greeting.startswith(b"* OK"):  # IMAP
                            conn.sendall(self._imap_answer(tag, line))
            except OSError:
                pass

    @staticmethod
    def _imap_answer(tag: bytes, line: bytes) -> bytes:
        """Enough IMAP for a client to come to its login, which is then refused."""
        if b" CAPABILITY" in line.upper():
            return b"* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2\r\n" + tag + b" OK done\r\n"
        if b" AUTHENTICATE " in line.upper() and len(line.split()) == 3:
            return b"+ \r\n"  # the client sends its initial response next
        return tag + b" NO refused\r\n"

    def saw(self, secret: str) -> bool:
        """Whether `secret` arrived, as is or inside base64 (SASL)."""
        data = bytes(self.received)
        if secret.encode() in data:
            return True
        for word in data.replace(b"\r\n", b" ").split():
            try:
                if secret.encode() in base64.b64decode(word + b"==", validate=False):
                    return True
            except (binascii.Error, ValueError):
                continue
        return False

    def close(self) -> None:
        self._stop.set()
        self._socket.close()
        self._thread.join(2)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
