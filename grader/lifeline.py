"""Children that die with the grader, even with a grader killed by SIGKILL, which cannot clean up after itself.

Every process the grader starts (the app, the submission's commands, a local redis-server) is started through
PRELUDE: before it execs, it asks the kernel for SIGKILL when the thread that started it ends
(PR_SET_PDEATHSIG, Linux), and does not start at all if the grader is already gone. A grandchild that
double-forks is not covered; the sandbox's marker finds those (see sandbox.py).
"""

from __future__ import annotations

import os
import sys

# Python source run by `python -I -S -c`; its first argument is the grader's pid, which it removes from argv.
PRELUDE = r"""
import ctypes, os, signal, sys
_grader = int(sys.argv.pop(1))
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != _grader:
    os._exit(1)
"""

_EXEC = r"""
try:
    os.execvp(sys.argv[1], sys.argv[1:])
except OSError as exc:
    sys.stderr.write("cannot run %r: %s\n" % (sys.argv[1], exc.strerror or exc))
    sys.stderr.flush()  # os._exit flushes nothing
    os._exit(127)
"""


def bound_to_grader(argv: list[str], setup: str = "", *setup_args: str) -> list[str]:
    """argv that runs `argv` (by exec: the same pid) once PRELUDE has tied it to the grader. `setup` is more
    Python run before the exec; it must remove its own `setup_args` from sys.argv, as PRELUDE does."""
    return [sys.executable, "-I", "-S", "-c", PRELUDE + setup + _EXEC, str(os.getpid()), *setup_args, *argv]
