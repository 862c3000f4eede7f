"""What the proxy remembers of the commands it saw: a `Command` per command, in a bounded `Trace`.

The grader's memory must not grow with what a submission sends (an app may push gigabytes through Redis), so
a command keeps a preview of each argument (the first ARG_PREVIEW bytes, and the size of the whole), at most
MAX_ARGS arguments, and the trace keeps the newest commands within MAX_COMMANDS and MAX_BYTES, counting the
ones it let go. Keys, script names and the short values checks look for stay whole: only long values are cut.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from grader.resp import Frame

# Bytes of an argument the trace keeps. A cached product list's first product names fit, a 1 MB value does not.
ARG_PREVIEW = 1024
# Arguments of one command the trace keeps (an MSET of a million keys keeps the first ones).
MAX_ARGS = 64
# The trace lets its oldest commands go beyond either bound; a check only ever reads the commands of its own run.
MAX_COMMANDS = 200_000
MAX_BYTES = 64 << 20
_COMMAND_OVERHEAD = 256  # bytes of a Command's own objects, for the MAX_BYTES estimate

# Scripts and functions: args are (script|sha|function, numkeys, key1, ...).
_KEYED_AFTER_NUMKEYS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})
_ARG_DISPLAY = 60
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Command:
    """One command a client sent through the proxy."""

    seq: int  # global order of arrival
    conn: int  # client connection id (1, 2, ...)
    time: float  # time.monotonic() at arrival
    name: str  # upper-case command name, e.g. "EVALSHA" (inline commands too)
    args: tuple[str, ...]  # previews, decoded as utf-8 with errors="backslashreplace" (see `sizes`)
    pipelined: bool  # arrived while earlier commands on the same connection still awaited their replies
    in_multi: bool  # queued between MULTI and EXEC/DISCARD on its connection (those three themselves: False)
    dropped: bool  # answered by an injected fault, never forwarded
    reply: str | None = None  # short form once seen: "+OK", ":1", "$5", "nil", "*3", "-ERR ..."; else None
    refused: bool = False  # an administration command the proxy answered with an error itself (never forwarded)
    sizes: tuple[int, ...] = ()  # byte size of each argument as sent; an arg is cut when its size > ARG_PREVIEW
    omitted: int = 0  # arguments beyond MAX_ARGS, not kept at all
    replied: float | None = None  # time.monotonic() when its reply came back through the proxy; None until then

    @property
    def key(self) -> str | None:
        """The key the command acts on: args[0], or for EVAL/EVALSHA/FCALL the first key after numkeys."""
        if self.name in _KEYED_AFTER_NUMKEYS:
            try:
                numkeys = int(self.args[1])
            except (IndexError, ValueError):
                return None
            return self.args[2] if numkeys > 0 and len(self.args) > 2 else None
        return self.args[0] if self.args else None

    def cut(self, index: int) -> bool:
        """Whether args[index] is only the beginning of what the client sent."""
        return index < len(self.sizes) and self.sizes[index] > ARG_PREVIEW

    def __str__(self) -> str:
        shown = [_display(arg, self.sizes[i] if self.cut(i) else None) for i, arg in enumerate(self.args)]
        if self.omitted:
            shown.append(f"(+{self.omitted} more args)")
        return " ".join([self.name, *shown])


def _display(arg: str, size: int | None) -> str:
    # One line per command, so a Lua body's newlines and indentation collapse to single spaces.
    text = _SPACES.sub(" ", arg).strip()
    if len(text) > _ARG_DISPLAY or size is not None:
        text = text[: _ARG_DISPLAY - 3] + "..." + (f"({size} bytes)" if size is not None else "")
    if text == "" or " " in text or '"' in text:
        text = '"' + text.replace('"', '\\"') + '"'
    return text


def command_parts(frame: Frame) -> tuple[str, tuple[str, ...], tuple[int, ...], int] | None:
    """(name, argument previews, argument sizes, arguments omitted) of a request; None for an empty one."""
    value = frame.value
    if not isinstance(value, list) or not value:
        return None
    kept = value[1 : 1 + MAX_ARGS]
    args = tuple(_preview(item) for item in kept)
    sizes = tuple(len(item) if isinstance(item, (bytes, bytearray)) else len(str(item)) for item in kept)
    return _preview(value[0]).upper(), args, sizes, max(0, len(value) - 1 - MAX_ARGS)


def _preview(item: object) -> str:
    if isinstance(item, (bytes, bytearray)):
        # Cut before decoding, so a huge value is never copied whole.
        return bytes(item[:ARG_PREVIEW]).decode("utf-8", "backslashreplace")
    return str(item)[:ARG_PREVIEW]


def _weight(command: Command) -> int:
    return _COMMAND_OVERHEAD + sum(len(arg) for arg in command.args)


class Trace:
    """The commands seen by a proxy, in arrival order; the newest MAX_COMMANDS (and MAX_BYTES) of them.
    Thread-safe: the proxy thread appends, the harness reads. Positions (`mark()`) are global sequence numbers,
    so they stay valid across `clear()` and across the oldest commands being let go."""

    def __init__(self, max_commands: int = MAX_COMMANDS, max_bytes: int = MAX_BYTES) -> None:
        self._lock = threading.Lock()
        self._items: list[Command] = []
        self._base = 0  # seq of _items[0]
        self._next = 0  # seq the next command will get
        self._bytes = 0  # estimated size of _items
        self._max_commands = max_commands
        self._max_bytes = max_bytes
        self.discarded = 0  # commands let go to keep within the bounds (not those clear() removed)

    def mark(self) -> int:
        """A position: `since(mark)` returns the commands that arrive after this call."""
        with self._lock:
            return self._next

    def since(self, mark: int) -> list[Command]:
        with self._lock:
            return self._items[max(0, mark - self._base) :]

    def all(self) -> list[Command]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items = []
            self._bytes = 0
            self._base = self._next

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    # -- used by the proxy thread ----------------------------------------------------------------------------

    def _reserve(self) -> int:
        with self._lock:
            seq = self._next
            self._next += 1
            return seq

    def _append(self, command: Command) -> None:
        with self._lock:
            # A command reserved before a clear() is dropped with the rest; otherwise seqs stay contiguous.
            if command.seq == self._base + len(self._items):
                self._items.append(command)
                self._bytes += _weight(command)
                if len(self._items) > self._max_commands or self._bytes > self._max_bytes:
                    self._let_go()

    def _let_go(self) -> None:
        """Drop the oldest tenth at once (not one by one: deleting a list's head is linear)."""
        count = max(1, len(self._items) // 10)
        while count < len(self._items) and self._bytes - _total(self._items[:count]) > self._max_bytes:
            count *= 2
        count = min(count, len(self._items) - 1)
        self._bytes -= _total(self._items[:count])
        del self._items[:count]
        self._base += count
        self.discarded += count

    def _set_reply(self, seq: int, reply: str) -> None:
        replied = time.monotonic()  # read outside the lock: the clock, not the wait for it, is the reply's time
        with self._lock:
            index = seq - self._base
            if 0 <= index < len(self._items):
                self._items[index] = dataclasses.replace(self._items[index], reply=reply, replied=replied)


def _total(commands: Sequence[Command]) -> int:
    return sum(_weight(command) for command in commands)
