"""One way to run a tool of the grader's (git) on what a submission brought: in a session of its own, within a
deadline, stoppable, and never leaving a process behind.

Its own session: a terminal's Ctrl-C reaches the grader, which decides what to stop, and never the tool straight
away (a clone killed that way would look like the student's failure). At the deadline, or when the grader stops,
the whole process group is killed: git's helpers (`git-remote-http`, a credential helper) too, not only git.
Its output goes to temporary files, not pipes, so a chatty tool never blocks on a full pipe while it is waited for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

POLL_S = 0.1  # how soon a stop is noticed
Stopped = Callable[[], bool]  # true once the grader is stopping (Ctrl-C)


def never() -> bool:
    """A Stopped for callers that are never stopped from outside."""
    return False


class Interrupted(Exception):
    """The command was stopped because the grader is stopping (Ctrl-C): nothing about the submission is known."""


def run_command(argv: Sequence[str], *, timeout: float, env: Mapping[str, str], cwd: Path | str | None = None,
                stopped: Stopped = never) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end: its exit code and output as text. Raises subprocess.TimeoutExpired after `timeout`
    seconds, Interrupted as soon as `stopped()` is true, OSError when it cannot start; the command and everything
    in its process group are killed first."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env),
                                cwd=cwd, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=POLL_S)
                    break
                if stopped():
                    raise Interrupted(f"{argv[0]} was stopped")
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(list(argv), timeout)
        finally:
            if proc.returncode is None:  # the group still exists while its leader is unreaped
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            list(argv), proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"))
