"""Evidence, read from the proxy's trace while a timing check runs, that the app sends Redis one command at a time.

An app whose event loop waits on every Redis call (a synchronous client) cannot send a command while another one
is out: with many requests in flight, its commands still reach the proxy strictly one after another, each after
the reply to the one before. A non-blocking app with several requests in flight has several commands out at once
within its first round trip. The timing checks read this to stop paying an injected latency that can no longer
change what they judge (see where it is used)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

from grader.api import Command

POLL_S = 0.01  # how often a timing check looks at the trace while its requests are in flight


def one_at_a_time(commands: Sequence[Command], at_least: int) -> bool:
    """Whether at least `at_least` commands have been answered and every command so far reached the proxy after
    the reply to the one before it (none was sent while another was out, none pipelined)."""
    ordered = sorted(commands, key=lambda c: c.seq)
    if sum(1 for c in ordered if c.replied is not None) < at_least:
        return False
    return all(before.replied is not None and after.time >= before.replied
               for before, after in itertools.pairwise(ordered))


async def settle(tasks: Sequence[asyncio.Task], decided: Callable[[], bool], lift: Callable[[], object]) -> bool:
    """Waits for every task; the first time `decided()` holds while some are still running, calls `lift()` once
    (and goes on waiting). Returns whether it did."""
    lifted = False
    pending = set(tasks)
    while pending:
        if not lifted and decided():
            lift()
            lifted = True
        _, pending = await asyncio.wait(pending, timeout=None if lifted else POLL_S)
    return lifted
