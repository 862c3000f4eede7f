"""A RESP-aware TCP proxy between the app under test and Redis: it records every command, and can add latency
and answer chosen commands with an error instead of forwarding them (fault injection).

It runs its own asyncio loop in a daemon thread, so the harness's event loop (which drives many concurrent
HTTP requests) never delays the proxy, and the proxy's sleeps never delay the harness.

Per client connection:
  client -> [client pump] -> forward queue -> [forwarder: waits out the latency] -> upstream Redis
  upstream -> [upstream pump] -> client, with injected fault replies spliced in at their positions

Rules worth knowing when writing checks:
- A command is in the trace as soon as its bytes arrive, before it is forwarded: when the app's HTTP response
  reaches the harness, everything the app sent for it is already recorded.
- Replies are matched to commands per connection in FIFO order to fill `Command.reply`. After SUBSCRIBE /
  PSUBSCRIBE / SSUBSCRIBE / MONITOR / CLIENT REPLY OFF|SKIP, or once a RESP3 push or an unmatched reply is seen,
  a connection's replies are no longer 1:1 with its commands: the proxy stops attributing replies there (they
  stay None), stops injecting faults there, and just forwards bytes.
- Faults never drop MULTI, EXEC, DISCARD or anything queued between them: the transaction is atomic anyway, and
  a fake reply in place of QUEUED would make EXEC's reply disagree with what the client queued.
- Latency delays each batch of commands the client sent together (one read) once, before it is forwarded;
  a pipeline pays one round trip, other connections are not delayed, and order is kept.
- Commands that administer the server (SHUTDOWN, CONFIG SET, CLIENT KILL/PAUSE, ...; grader/proxy_refusals.py)
  are never forwarded: the client gets `-ERR <command> is disabled by the grader`, the trace a `refused` entry.
- The trace holds previews of the arguments and keeps only the newest commands (grader/proxy_trace.py), so
  what an app pushes through Redis never piles up in the grader's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grader.errors import GraderError
from grader.proxy_connection import ClientConnection, parse_fault_reply
from grader.proxy_trace import Command, Trace

__all__ = ["Command", "Fault", "RedisProxy", "Trace"]

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

log = logging.getLogger(__name__)
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


@dataclass
class Fault:
    """Answer matching commands with `reply` instead of forwarding them to Redis.

    `match` is called in the proxy's thread with each eligible command (dropped=False) as it arrives, so keep it
    quick and side-effect free; an exception in it counts as "no match". Commands in a transaction, and on a
    connection in Pub/Sub or MONITOR mode, are never eligible (see the module docstring)."""

    match: Callable[[Command], bool]
    reply: bytes = b"-ERR dropped by redis-grader fault injection\r\n"
    times: int | None = None  # how many commands to drop; None = every match


@dataclass
class _ActiveFault:
    fault: Fault
    reply_short: str
    remaining: int | None


class RedisProxy:
    """A recording, fault-injecting RESP proxy. Use as a context manager, or start()/stop()."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = int(upstream_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.trace = Trace()
        self.connections = 0  # client connections accepted so far, including ones refused while unreachable
        self._latency = 0.0
        self._reachable = True
        self._faults: dict[int, _ActiveFault] = {}
        self._fault_handles = itertools.count(1)
        self._fault_lock = threading.Lock()
        self._conn_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: dict[int, ClientConnection] = {}
        self._conn_tasks: set[asyncio.Task] = set()
        self._stopped = False

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def latency(self) -> float:
        """Seconds added to every round trip (each batch of commands a client sends together)."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError(f"latency must be >= 0 seconds, got {seconds}")
        self._latency = seconds

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> RedisProxy:
        """Listen on 127.0.0.1 on a free port; returns once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("RedisProxy.start() called twice")
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._accept, self.host, 0))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name=f"redis-proxy->{self.upstream_port}", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT) or failure:
            self.stop()
            reason = failure[0] if failure else "timed out"
            raise GraderError(f"could not start the Redis proxy: {reason}")
        return self

    def stop(self) -> None:
        """Close the listener and every connection and end the thread. Idempotent; never waits on clients."""
        if self._stopped:
            return
        self._stopped = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError, TimeoutError):  # RuntimeError: the loop already ended
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_STOP_TIMEOUT)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_STOP_TIMEOUT)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            conn.close(abort=True)
        tasks = [t for t in self._conn_tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), _STOP_TIMEOUT / 2)

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> int:
        """Start dropping commands `fault.match` accepts; returns a handle for remove_fault()."""
        short = parse_fault_reply(fault.reply)
        if fault.times is not None and fault.times < 1:
            raise ValueError(f"Fault.times must be >= 1 or None, got {fault.times}")
        with self._fault_lock:
            handle = next(self._fault_handles)
            self._faults[handle] = _ActiveFault(fault, short, fault.times)
        return handle

    def remove_fault(self, handle: int) -> None:
        with self._fault_lock:
            self._faults.pop(handle, None)

    def clear_faults(self) -> None:
        with self._fault_lock:
            self._faults.clear()

    def _take_fault(self, command: Command) -> _ActiveFault | None:
        """The first fault (in the order added) that matches and still has drops left; counts the drop."""
        with self._fault_lock:
            faults = list(self._faults.items())
        for handle, active in faults:
            try:
                matched = bool(active.fault.match(command))
            except Exception:  # a broken predicate must not break the proxy
                log.exception("proxy: fault predicate raised on %s; treated as no match", command)
                continue
            if not matched:
                continue
            with self._fault_lock:
                if handle not in self._faults:
                    continue
                if active.remaining is not None:
                    if active.remaining <= 0:
                        continue
                    active.remaining -= 1
                    if active.remaining == 0:
                        del self._faults[handle]
            return active
        return None

    # -- reachability ----------------------------------------------------------------------------------------

    def set_reachable(self, reachable: bool) -> None:
        """False: close every client connection now and refuse new ones (accepted, then closed at once), so a
        client fails fast with a connection error instead of hanging. True: accept again."""
        self._reachable = bool(reachable)
        loop = self._loop
        if reachable or loop is None or self._stopped:
            return

        async def drop_all() -> None:
            for conn in list(self._conns.values()):
                conn.close()

        asyncio.run_coroutine_threadsafe(drop_all(), loop).result(_STOP_TIMEOUT)

    # -- accepting -------------------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if not self._reachable:
            writer.close()
            return
        cid = next(self._conn_ids)
        conn = ClientConnection(self, cid, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._conns[cid] = conn
        self._conn_tasks.add(task)
        try:
            await conn.run()
        except asyncio.CancelledError:
            # Only stop() cancels this task. End it normally: asyncio's stream callback calls
            # task.exception(), which would raise (and log) for a cancelled task.
            conn.close(abort=True)
        except Exception:  # one broken connection must not affect the others
            log.exception("proxy conn %d failed", cid)
            conn.close(abort=True)
        finally:
            self._conns.pop(cid, None)
            self._conn_tasks.discard(task)
