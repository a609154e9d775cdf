"""A TCP relay on loopback that delays every chunk by a fixed time each way, so a round trip
through it takes `rtt` more: what a remote Exchange Online or Gmail is, next to a mail server
on loopback. Latency only (no bandwidth limit); order is kept. `down` and `up` make the peer
unreachable and reachable again on the same port. No Django here."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class LatencyProxy:
    def __init__(self, *, upstream_port: int, rtt: float, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.delay = rtt / 2
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="latency-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the latency proxy did not start")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(self._listen(0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self, port: int) -> asyncio.Server:
        return await asyncio.start_server(
            self._relay, "127.0.0.1", port, backlog=4096, reuse_address=True
        )

    def down(self) -> None:
        """Refuse every connection, and cut the ones relayed, until `up`: a peer unreachable."""

        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            self._server = None

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)

    def up(self) -> None:
        async def listen() -> None:
            self._server = await self._listen(self.port)

        asyncio.run_coroutine_threadsafe(listen(), self._loop).result(timeout=10)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, server_w}
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w),
                self._pipe(server_r, client_w),
                return_exceptions=True,
            )
        finally:
            self._writers -= {client_w, server_w}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((time.monotonic() + self.delay, data))
        except OSError:
            pass
        finally:
            queue.put_nowait((0.0, b""))
            with contextlib.suppress(Exception):
                await sender

    def close(self) -> None:
        async def end() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):  # closing goes on whatever a relay did
            asyncio.run_coroutine_threadsafe(end(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
