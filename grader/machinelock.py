"""One timing check at a time on this machine: a lock every grader process of the user shares.

The timing checks judge time and concurrency (a stampede, a race under 50 concurrent requests, the event loop
under injected latency), so two of them measuring at once, one grading's beside another's, would weigh on each
other's verdict. `grader batch` runs more gradings than there are cores, since most of a grading is waiting on the
app, Redis or a TTL; a grading's timing checks take this lock, so no two gradings' timing checks run at once: each
for the whole check (timing_phase), or, declared lock="measuring", only while it measures (MeasuringLock, its
ctx.measuring()), so the cache fill or the sequential limit it needs first is not part of the queue.

Only the timing checks wait for the lock. The ordinary checks of the other gradings go on beside it: they send one
request after another, and their apps mostly wait on their simulated databases, so together they weigh on the
machine about as much as the busy core under which tests/test_advanced_determinism.py proves every timing verdict
(and tests/test_batch_determinism.py proves a batch's, at --jobs 4). Making them wait too, as this lock once did,
serialized every grading's timing phase with every other's ordinary checks: on a fast machine the timing phases
alone then set the pace of a batch. The isolated checks (the submission's own tests, the linter) take no part
either: their commands run at a low processor priority (grader/schedule.py).

The lock is an `fcntl.flock` on a file in the user's runtime folder. The kernel drops it when its holder's
descriptor closes, which includes the holder dying by SIGKILL, so a killed grading never leaves it held. There is
no timeout on acquiring it: the holder always finishes its timing phase within its checks' own timeouts, and a
grading in a batch is bounded by the batch's --timeout anyway. A timeout here would only turn a slow machine
into graded errors.

REDIS_GRADER_TIMING_LOCK names another lock file (tests, or gradings that must not share one).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

LOCK_VAR = "REDIS_GRADER_TIMING_LOCK"
# How often a waiting grading tries again: one system call, so often enough that the lock passes from one timing
# check to the next without a noticeable gap (a batch hands it over a few times per submission).
POLL_S = 0.01


def lock_path() -> Path:
    override = os.environ.get(LOCK_VAR)
    if override:
        return Path(override).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and os.access(runtime, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"redis-grader-{os.getuid()}" / "timing.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def try_acquire(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def machine_lock(path: Path | None = None) -> Iterator[None]:
    """Hold the machine-wide timing lock for the block (blocking until it is free)."""
    fd = _open(path or lock_path())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing a descriptor releases its lock


async def _acquire(fd: int) -> None:
    # Polling, not a blocking flock in a thread: the event loop keeps serving whatever else runs on it (the
    # grading's background checks), and a cancelled wait leaves nothing behind (no thread still blocked in flock
    # that would take the lock later).
    while not try_acquire(fd):
        await asyncio.sleep(POLL_S)


def timing_phase(path: Path | None = None) -> contextlib.AbstractAsyncContextManager[None]:
    """The lock, for a whole timing check: no other grading's timing check runs meanwhile."""
    return MeasuringLock(path)()


class MeasuringLock:
    """`ctx.measuring()` of one timing check declared `lock="measuring"`: the machine lock while the check is inside
    it, so what it does first (fill a cache, learn a limit) runs beside other gradings' timing checks. Re-entrant,
    also across the check's tasks: the lock is taken by the first block in and let go by the last one out. It keeps
    how long the check waited for the lock, which the runner leaves out of the check's timeout and duration
    (waiting one's turn is not the check's time)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._fd: int | None = None  # open and locked while any block is inside
        self._inside = 0
        self._taking = asyncio.Lock()  # one task takes the lock; the others entering meanwhile wait for it
        self._waited_s = 0.0
        self._waiting_since: float | None = None

    def waited_s(self) -> float:
        """Seconds spent waiting for the lock so far, a wait still going on included."""
        ongoing = time.monotonic() - self._waiting_since if self._waiting_since is not None else 0.0
        return self._waited_s + ongoing

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        async with self._taking:
            if self._fd is None:
                self._fd = await self._take()
            self._inside += 1
        try:
            yield
        finally:
            self._inside -= 1
            if self._inside == 0 and self._fd is not None:
                os.close(self._fd)  # closing the descriptor releases the lock
                self._fd = None

    async def _take(self) -> int:
        fd = _open(self._path or lock_path())
        self._waiting_since = time.monotonic()
        try:
            await _acquire(fd)
        except BaseException:
            os.close(fd)  # a cancelled wait leaves nothing behind
            raise
        finally:
            self._waited_s += time.monotonic() - self._waiting_since
            self._waiting_since = None
        return fd
