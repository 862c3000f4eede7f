"""A grading's memo: work that several checks need (the submission's own test suite, say) is done once, by the
first check that asks, and every other check awaits the same result.

The checks stay independent: each asks for the work itself, as if it were alone, and judges the result by its
own rules; none sees another's outcome. The memo only saves running the same thing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Memo:
    """Results by key, each computed by one task shared by every caller of one grading."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[Any]] = {}
        self._closed = False

    async def once(self, key: Hashable, factory: Callable[[], Awaitable[T]]) -> T:
        """The result of `factory()` for `key`: the first caller starts it as a task; every later caller awaits
        that task, and gets its result or its exception. A caller cancelled while it waits (its check timed out)
        leaves the task running for the others: only close() cancels it."""
        task = self._tasks.get(key)
        if task is None:
            if self._closed:  # work started now would outlive the grading: nothing would ever cancel it
                raise RuntimeError("the grading's memo is closed")
            task = self._tasks[key] = asyncio.ensure_future(factory())
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancels what still runs (a student's process is killed when its ctx.run is cancelled) and waits for
        it to end; an exception nobody awaited is dropped with it. Nothing new starts afterwards."""
        self._closed = True
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        # return_exceptions: each task's end (its cancellation, its error) is collected, never raised here.
        await asyncio.gather(*tasks, return_exceptions=True)
