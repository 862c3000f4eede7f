"""The host side of a container's Redis connection: Unix sockets (in directories mounted into the containers)
forwarded to TCP endpoints on this machine (the RESP proxy, or a check's own Redis).

The proxy listens on TCP 127.0.0.1, which a container without network cannot reach; each connection through a
socket here becomes one connection to the proxy, so its trace, latency and faults see the app as before, and a
connection the proxy closes is closed all the way to the app.

One asyncio loop in a daemon thread serves every socket of a runtime (as in grader/proxy.py, so the harness's
own loop never waits on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from pathlib import Path

from grader.errors import GraderError

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 16
_TIMEOUT = 10.0


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(_READ_SIZE):
            writer.write(data)
            await writer.drain()


class Forwarders:
    """Unix socket -> TCP forwarders. start() once, add() any number, stop() closes everything."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> Forwarders:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="uds-forwarders", daemon=True)
        self._thread.start()
        ready.wait(_TIMEOUT)
        return self

    def add(self, path: Path, host: str, port: int) -> None:
        """Listen on `path` (which anyone who can reach its directory may connect to) and forward to host:port."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("Forwarders.add() before start()")

        async def listen() -> None:
            server = await asyncio.start_unix_server(lambda r, w: self._forward(r, w, host, port), path=str(path))
            os.chmod(path, 0o666)  # the container's unprivileged user must be able to connect
            self._servers.append(server)

        try:
            asyncio.run_coroutine_threadsafe(listen(), loop).result(_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise GraderError(f"cannot listen on {path}: {exc}") from exc

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        pumps = [asyncio.ensure_future(_pump(reader, up_writer)), asyncio.ensure_future(_pump(up_reader, writer))]
        try:
            # Either side gone (the app closed, or the proxy dropped it): the connection is over.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for side in (writer, up_writer):
                side.close()
                self._writers.discard(side)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return

        async def close_all() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._writers):
                writer.close()
            connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in connections:
                task.cancel()
            await asyncio.wait_for(asyncio.gather(*connections, return_exceptions=True), _TIMEOUT / 2)

        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(_TIMEOUT)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_TIMEOUT)
