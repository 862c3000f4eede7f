"""One client connection through the proxy (see grader/proxy.py for the rules): the three tasks that move its
bytes, the recording of its commands, and the placing of fault and refusal replies among Redis's own."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grader.proxy_refusals import refusal, refusal_reply
from grader.proxy_trace import Command, command_parts
from grader.resp import Frame, ProtocolError, Push, RespParser, describe, encode_command

if TYPE_CHECKING:
    from grader.proxy import RedisProxy

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 16
# Batches a client may have queued behind the latency before the proxy stops reading from it (backpressure).
_FORWARD_QUEUE = 1024
_DRAIN_AFTER_CLIENT_EOF = 5.0

_TRANSACTION = frozenset({"MULTI", "EXEC", "DISCARD"})
# After these a connection's replies no longer pair 1:1 with its commands.
_STREAMING = frozenset({"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"})


def parse_fault_reply(reply: bytes) -> str:
    try:
        frames = RespParser().feed(reply)
    except ProtocolError as exc:
        raise ValueError(f"fault reply is not RESP: {exc}") from None
    if len(frames) != 1 or frames[0].raw != bytes(reply):
        raise ValueError(f"fault reply must be exactly one complete RESP value, got {bytes(reply)[:60]!r}")
    return describe(frames[0])


@dataclass
class _Pending:
    """A command forwarded or dropped, awaiting the reply the client must receive for it."""

    seq: int
    fake: bytes | None = None  # a fault's reply, delivered in this command's place
    fake_short: str = ""
    ends_matching: bool = False  # replies after this command's reply no longer pair with commands
    instead: bytes | None = None  # forwarded in place of the command's own bytes


@dataclass
class _Batch:
    """What one read from the client produced: forwarded together, after the latency."""

    deadline: float
    upstream: bytes
    pending: list[_Pending]


class ClientConnection:
    def __init__(self, proxy: RedisProxy, cid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.proxy = proxy
        self.cid = cid
        self.client_reader = reader
        self.client_writer = writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.queue: asyncio.Queue[_Batch | None] = asyncio.Queue(_FORWARD_QUEUE)
        self.pending: deque[_Pending] = deque()
        self.awaiting = 0  # commands arrived whose reply the client has not been sent yet
        self.in_multi = False
        self.attributing = True  # replies still pair 1:1 with commands
        self.streaming = False  # a command that ends 1:1 pairing was sent: no more faults here
        self.request_parser = RespParser(requests=True)
        self.reply_parser = RespParser()
        self.requests_readable = True  # False after a client protocol error: bytes are forwarded, not parsed
        self.tasks: list[asyncio.Task] = []

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            upstream_reader, self.upstream_writer = await asyncio.open_connection(
                self.proxy.upstream_host, self.proxy.upstream_port
            )
        except OSError as exc:
            log.warning("proxy: cannot reach upstream Redis %s:%s: %s", self.proxy.upstream_host,
                        self.proxy.upstream_port, exc)
            self.close()
            return
        self.tasks = [
            asyncio.create_task(self._pump_client()),
            asyncio.create_task(self._forward()),
            asyncio.create_task(self._pump_upstream(upstream_reader)),
        ]
        forwarder, upstream_pump = self.tasks[1], self.tasks[2]
        try:
            # Redis closing ends the pair. The client closing (forwarder done) lets Redis's last replies
            # through for a moment; a failed forwarder (Redis gone) ends it at once.
            await asyncio.wait([forwarder, upstream_pump], return_when=asyncio.FIRST_COMPLETED)
            if not upstream_pump.done() and not forwarder.cancelled() and forwarder.exception() is None:
                await asyncio.wait([upstream_pump], timeout=_DRAIN_AFTER_CLIENT_EOF)
        finally:
            self.close()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def close(self, abort: bool = False) -> None:
        for writer in (self.client_writer, self.upstream_writer):
            if writer is None:
                continue
            if abort:
                writer.transport.abort()
            else:
                writer.close()

    # -- client -> upstream ----------------------------------------------------------------------------------

    async def _pump_client(self) -> None:
        try:
            while True:
                data = await self.client_reader.read(_READ_SIZE)
                if not data:
                    break
                await self.queue.put(self._arrive(data))
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await self.queue.put(None)

    def _parse(self, parser: RespParser, data: bytes, what: str) -> tuple[list[Frame], bool]:
        """The values `data` completes, and whether the stream broke (then the values before the fault)."""
        try:
            return parser.feed(data), False
        except ProtocolError as exc:
            log.info("proxy conn %d: unparseable %s (%s); forwarding raw", self.cid, what, exc)
            return exc.frames, True

    def _arrive(self, data: bytes) -> _Batch:
        """Record the commands in `data` (one read = one batch sent together) and decide what to forward."""
        now = time.monotonic()
        deadline = now + self.proxy.latency
        if not self.requests_readable:
            return _Batch(deadline, data, [])
        # Redis will answer an unparseable request with a protocol error and close; the bytes pass on as they are.
        frames, broken = self._parse(self.request_parser, data, "request")
        upstream: list[bytes] = []
        pending: list[_Pending] = []
        for index, frame in enumerate(frames):
            parts = command_parts(frame)
            if parts is None:
                # An empty multibulk or blank inline line: Redis ignores it and sends no reply.
                upstream.append(frame.raw)
                continue
            entry = self._record(parts, now, index)
            if entry.fake is None:
                upstream.append(entry.instead if entry.instead is not None else frame.raw)
            pending.append(entry)
        # An unfinished command stays in the parser until complete: a fault must see it whole before
        # deciding whether it reaches Redis at all.
        if broken:
            upstream.append(self.request_parser.unparsed())
            self.requests_readable = False
            self._stop_attributing()
        return _Batch(deadline, b"".join(upstream), pending)

    def _record(
        self, parts: tuple[str, tuple[str, ...], tuple[int, ...], int], now: float, index_in_batch: int
    ) -> _Pending:
        name, args, sizes, omitted = parts
        trace = self.proxy.trace
        in_multi = self.in_multi and name not in _TRANSACTION
        if name == "MULTI":
            self.in_multi = True
        elif name in ("EXEC", "DISCARD", "RESET"):
            self.in_multi = False
        # While replies are matched, `awaiting` is exact; without matching, "earlier in the same read" is the
        # best evidence of pipelining there is.
        pipelined = self.awaiting > 0 if self.attributing else index_in_batch > 0
        command = Command(trace._reserve(), self.cid, now, name, args, pipelined, in_multi, dropped=False,
                          sizes=sizes, omitted=omitted)
        refused = refusal(name, args)
        if refused is not None:
            trace._append(dataclasses.replace(command, refused=True))
            self.awaiting += 1
            return self._refuse(command.seq, refused, in_multi)
        fault = None
        if not (in_multi or name in _TRANSACTION or self.streaming):
            fault = self.proxy._take_fault(command)
        if fault is not None:
            command = dataclasses.replace(command, dropped=True)
        trace._append(command)
        self.awaiting += 1
        ends = name in _STREAMING or (name == "CLIENT" and len(args) >= 2 and args[0].upper() == "REPLY"
                                       and args[1].upper() in ("OFF", "SKIP"))
        if ends:
            self.streaming = True
            if name == "CLIENT":
                # CLIENT REPLY OFF/SKIP gets no reply at all: stop pairing right away.
                self._stop_attributing()
        if fault is not None:
            return _Pending(command.seq, fault.fault.reply, fault.reply_short)
        return _Pending(command.seq, ends_matching=ends)

    def _refuse(self, seq: int, what: str, in_multi: bool) -> _Pending:
        """An administration command is never forwarded. Where a reply can be placed exactly it is answered with
        an error; in a transaction, or where replies no longer pair with commands, an unknown command goes to
        Redis in its place, so Redis answers it in turn (and aborts the transaction, as for any bad command)."""
        if in_multi or self.streaming:
            return _Pending(seq, instead=encode_command(what.replace(" ", "-") + "-is-disabled-by-the-grader"))
        reply = refusal_reply(what)
        return _Pending(seq, reply, parse_fault_reply(reply))

    async def _forward(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.upstream_writer is not None
        try:
            while True:
                batch = await self.queue.get()
                if batch is None:
                    # The client is done sending: pass the half-close on; Redis then closes its side.
                    if self.upstream_writer.can_write_eof():
                        self.upstream_writer.write_eof()
                    return
                while (delay := batch.deadline - loop.time()) > 0:
                    await asyncio.sleep(delay)
                if self.attributing:
                    # Registered before writing, so the reply can never arrive ahead of its entry.
                    self.pending.extend(batch.pending)
                else:
                    self._deliver_fakes(batch.pending)
                if batch.upstream:
                    self.upstream_writer.write(batch.upstream)
                self._flush_fakes()
                await self.upstream_writer.drain()
        except (ConnectionError, OSError):
            return

    # -- upstream -> client ----------------------------------------------------------------------------------

    async def _pump_upstream(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                if self.attributing:
                    self._replies(data)
                else:
                    self.client_writer.write(data)
                await self.client_writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._flush_fakes()
            # Let whatever Redis sent last (e.g. QUIT's +OK) reach the client before the pair is closed.
            with contextlib.suppress(Exception):
                self.client_writer.write_eof()

    def _replies(self, data: bytes) -> None:
        frames, broken = self._parse(self.reply_parser, data, "reply")
        write = self.client_writer.write
        for frame in frames:
            if not self.attributing:
                write(frame.raw)
                continue
            self._flush_fakes()
            if isinstance(frame.value, Push) or not self.pending:
                # Out-of-band data: pairing replies with commands is no longer possible here.
                self._stop_attributing()
                write(frame.raw)
                continue
            entry = self.pending.popleft()
            self.awaiting -= 1
            self.proxy.trace._set_reply(entry.seq, describe(frame))
            write(frame.raw)
            if entry.ends_matching:
                self._stop_attributing()
            else:
                self._flush_fakes()
        if broken:
            self._stop_attributing()
        if not self.attributing:
            # From here on bytes go straight through; first whatever the parser still holds.
            rest = self.reply_parser.unparsed()
            if rest:
                write(rest)

    def _flush_fakes(self) -> None:
        """Send the fault replies that are now next in line (nothing forwarded is still ahead of them)."""
        while self.pending and self.pending[0].fake is not None:
            entry = self.pending.popleft()
            self._send_fake(entry)

    def _deliver_fakes(self, entries: list[_Pending]) -> None:
        for entry in entries:
            if entry.fake is not None:
                self._send_fake(entry)

    def _send_fake(self, entry: _Pending) -> None:
        assert entry.fake is not None
        self.awaiting -= 1
        self.proxy.trace._set_reply(entry.seq, entry.fake_short)
        with contextlib.suppress(Exception):
            self.client_writer.write(entry.fake)

    def _stop_attributing(self) -> None:
        if not self.attributing:
            return
        self.attributing = False
        self.streaming = True
        # Fault replies still queued can no longer be placed exactly; the client is owed them, so send them.
        for entry in self.pending:
            if entry.fake is not None:
                self._send_fake(entry)
        self.pending.clear()
