"""One grading at a time on this machine runs its timing checks: a lock every grader process of the user shares.

The timing checks judge time and concurrency (a stampede, a rate-limit window), so another grading's work
beside them could change their verdict. `grader batch` runs more gradings than there are cores, since most of
a grading is waiting on the app, Redis or a TTL; what must have the machine to itself takes this lock, and the
others wait between two of their ordinary checks.

An ordinary check holds the lock shared while it runs, the timing phase exclusively: so a timing phase runs with
no ordinary check of any grading beside it, and waits only for those running when it asks. A turnstile (a second
lock file) gives the timing phase precedence: once it asks, no new ordinary check starts, so a stream of them
cannot starve it. The gradings' apps sit idle meanwhile; their work resumes after the timing phase. The isolated
checks (the submission's own tests) take no part: their commands run at a low processor priority instead
(grader/schedule.py), so they go on beside a timing phase without weighing on it.

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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

LOCK_VAR = "REDIS_GRADER_TIMING_LOCK"
POLL_S = 0.05  # how often a waiting grading tries again (cheap: one system call)


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


def _turnstile(path: Path) -> Path:
    return path.with_name(path.name + ".turnstile")


def try_acquire(fd: int, *, shared: bool = False) -> bool:
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def _acquire(fd: int, *, shared: bool = False) -> None:
    # Polling, not a blocking flock in a thread: the event loop keeps serving whatever else runs on it, and a
    # cancelled wait leaves nothing behind (no thread still blocked in flock that would take the lock later).
    while not try_acquire(fd, shared=shared):
        await asyncio.sleep(POLL_S)


@contextlib.contextmanager
def machine_lock(path: Path | None = None) -> Iterator[None]:
    """Hold the machine-wide timing lock for the block (blocking until it is free; no ordinary check of any
    grading runs meanwhile)."""
    main = path or lock_path()
    gate, fd = _open(_turnstile(main)), _open(main)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing a descriptor releases its lock
        os.close(gate)


@contextlib.asynccontextmanager
async def timing_phase(path: Path | None = None) -> AsyncIterator[None]:
    """The machine to itself, for a grading's timing phase: the turnstile first (no ordinary check of any grading
    starts from then on), then the lock itself (once the ordinary checks running already have finished)."""
    main = path or lock_path()
    gate, fd = _open(_turnstile(main)), _open(main)
    try:
        await _acquire(gate)
        await _acquire(fd)
        yield
    finally:
        os.close(fd)
        os.close(gate)


@contextlib.asynccontextmanager
async def ordinary_check(path: Path | None = None) -> AsyncIterator[None]:
    """One ordinary check, beside the ordinary checks of every other grading (a shared hold of the lock), but
    never during a timing phase: it passes the turnstile (waiting while a timing phase holds or wants it), then
    holds the lock shared until it is done."""
    main = path or lock_path()
    gate, fd = _open(_turnstile(main)), _open(main)
    try:
        await _acquire(gate, shared=True)
        await _acquire(fd, shared=True)  # free at once: whoever holds it exclusively holds the turnstile too
        os.close(gate)
        gate = -1
        yield
    finally:
        os.close(fd)
        if gate >= 0:
            os.close(gate)
