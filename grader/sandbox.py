"""Everything that runs student code goes through here.

A sandboxed process gets a scrubbed environment, its own session and process group, resource limits, no
stdin, and a bounded log. Every process it starts carries a random marker in its environment, so stop()
can find and kill even the ones that left the process group (double fork + setsid): nothing a submission
starts outlives stop().

This is containment against accidents and sloppy code (a server that ignores SIGTERM, a forgotten
background worker), not a security boundary: the code runs as the harness's user. The local runtime
(grader/runtime/local.py) runs the submission here; the docker runtime runs it in confined containers.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import secrets
import select
import signal
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grader import procfs
from grader.errors import GraderError
from grader.lifeline import bound_to_grader
from grader.tempdirs import make_owned_tempdir, remove_tree
from grader.text import log_tail

if TYPE_CHECKING:  # typing.Self is 3.11+; the package supports 3.10
    from typing_extensions import Self

log = logging.getLogger(__name__)

MARKER_VAR = "REDIS_GRADER_RUN"
DEFAULT_LOG_CAP = 256 * 1024
ADDRESS_SPACE_LIMIT = 4 * 1024**3  # generous: uvicorn + FastAPI + redis-py use ~100 MiB of virtual memory
NOFILE_LIMIT = 4096
FILE_SIZE_LIMIT = 256 * 1024**2  # no single file larger: a runaway log or dump cannot fill the disk
CPU_SECONDS_LIMIT = 600  # per process; a whole grading takes a fraction of that, a busy loop never ends alone
PROCESS_LIMIT = 4096  # of the user, all processes counted: generous for a grader, a wall for a fork bomb
# `yields`: a process that runs beside the timing checks (the submission's own tests) runs at nice 10, a tenth of
# the usual scheduling weight: whenever the app, Redis or the grader want the processor they get it, so it cannot
# weigh on what the timing checks measure. Not nice 19 (a seventieth): a machine busy with other work would starve
# it until its check's timeout, which would be a wrong grade.
YIELDING_NICE = 10
YIELDS, USUAL = "yield", "usual"

# Runs in the child between fork and the student's program (after lifeline's PRELUDE, before its exec): the rlimits.
# A wrapper instead of Popen(preexec_fn=...) because preexec_fn can deadlock a forked child when the
# harness has other threads (log readers, batch workers), which it always does.
_WRAPPER = r"""
import resource
def cap(which, value):
    try:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY and value > hard:
            value = hard
        resource.setrlimit(which, (value, value))  # hard too: the program cannot raise it again
    except (ValueError, OSError):
        pass
cap(resource.RLIMIT_CORE, 0)
cap(resource.RLIMIT_AS, int(sys.argv.pop(1)))
cap(resource.RLIMIT_NOFILE, int(sys.argv.pop(1)))
""" + f"""
if sys.argv.pop(1) == "yield":
    # Its nice value, and the same for its session's autogroup: where autogroup is on, Linux schedules sessions
    # against each other, so nice alone would only rank it within its own session.
    try:
        os.nice({YIELDING_NICE})
    except OSError:
        pass
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write("{YIELDING_NICE}")
    except OSError:
        pass
cap(resource.RLIMIT_FSIZE, {FILE_SIZE_LIMIT})
cap(resource.RLIMIT_CPU, {CPU_SECONDS_LIMIT})
# RLIMIT_NPROC counts every process of the user and the kernel ignores it for root (CAP_SYS_RESOURCE), so it
# is set only for another user, where it stops a fork bomb before it takes the machine.
if os.getuid() != 0:
    cap(resource.RLIMIT_NPROC, {PROCESS_LIMIT})
"""


def sandbox_env(extra: dict[str, str] | None, home: str, marker: str) -> dict[str, str]:
    """The child's whole environment: almost nothing of the harness's (no tokens, no VIRTUAL_ENV, no
    PYTHONPATH leaking the harness's packages into the submission)."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    if "LC_ALL" in os.environ:
        env["LC_ALL"] = os.environ["LC_ALL"]
    # TMPDIR too: what the command leaves in its temp folder (pytest's tmp_path, the suite wrapper's coverage data,
    # anything a killed command never cleaned up) goes with the home at the end of the run, not into /tmp for good.
    env.update(HOME=home, TMPDIR=home, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    env[MARKER_VAR] = marker  # last: the caller cannot accidentally override the marker
    return env


# --------------------------------------------------------------------------------------------- /proc scan


def _is_ours(pid: int, marker: str, group: int | None) -> bool:
    """Alive (not a zombie) and either in our process group/session or carrying our marker."""
    info = procfs.stat(pid)
    if info is None or not info.alive:
        return False
    if group is not None and group in (info.pgid, info.sid):
        return True
    return procfs.has_env_entry(pid, MARKER_VAR, marker)


def processes_with_marker(marker: str, group: int | None = None) -> list[int]:
    """Live (non-zombie) processes whose environment carries `marker`, or whose process group or session
    is `group`. Zombies are already dead; they are left for their parent to reap."""
    me = os.getpid()
    return [pid for pid in procfs.pids() if pid != me and _is_ours(pid, marker, group)]


def _signal(pid: int, sig: int, marker: str, group: int) -> None:
    """Signal `pid` only if it still is one of ours: through a pidfd opened before the re-check, so a pid
    that was recycled between the scan and the kill is never signalled."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
        return
    try:
        if _is_ours(pid, marker, group):
            signal.pidfd_send_signal(fd, sig)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------- process

_LIVE: weakref.WeakSet[SandboxedProcess] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    # A harness that dies on an unhandled exception still takes its children with it.
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.stop(grace=0.5)


class SandboxedProcess:
    """One sandboxed child process (and everything it starts). A context manager: start on enter, stop on exit."""

    def __init__(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        *,
        log_cap: int = DEFAULT_LOG_CAP,
        yields: bool = False,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv = [str(arg) for arg in argv]
        self.cwd = Path(cwd)
        self.extra_env = dict(env or {})
        self.log_cap = max(1, int(log_cap))
        self.yields = yields  # a low processor priority (see YIELDING_NICE)
        self.marker = secrets.token_hex(16)
        self.pid: int | None = None
        self.dropped_bytes = 0  # output discarded because of log_cap
        self._proc: subprocess.Popen[bytes] | None = None
        self._home: str | None = None
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._abandon_reader = threading.Event()
        self._exit_status: int | None = None
        self._stopped = False

    # -- lifecycle

    def start(self) -> SandboxedProcess:
        if self._proc is not None:
            raise RuntimeError("SandboxedProcess.start() called twice")
        if not self.cwd.is_dir():
            raise GraderError(f"cannot run {self.argv[0]}: working directory {self.cwd} does not exist")
        self._home = str(make_owned_tempdir("redis-grader-home-"))
        try:
            self._proc = subprocess.Popen(
                bound_to_grader(self.argv, _WRAPPER, str(ADDRESS_SPACE_LIMIT), str(NOFILE_LIMIT),
                                YIELDS if self.yields else USUAL),
                cwd=self.cwd,
                env=sandbox_env(self.extra_env, self._home, self.marker),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session + process group; pgid == sid == pid
                close_fds=True,
            )
        except OSError as exc:
            remove_tree(self._home)
            raise GraderError(f"cannot start the sandbox for {self.argv[0]}: {exc}") from exc
        self.pid = self._proc.pid
        _LIVE.add(self)
        try:
            self._reader = threading.Thread(target=self._read_output, name=f"sandbox-log-{self.pid}", daemon=True)
            self._reader.start()
        except BaseException:  # e.g. Ctrl-C right here: `with` never calls __exit__ when __enter__ raises
            self.stop(grace=0.5)
            raise
        return self

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal) or None while running.

        The child is not reaped here (WNOWAIT): as long as it is an unreaped zombie its pid, which is also
        the process group id, cannot be recycled, so signalling the group in stop() is always safe.
        """
        if self._exit_status is not None or self._proc is None:
            return self._exit_status
        if self._proc.returncode is not None:  # reaped by stop()
            self._exit_status = self._proc.returncode
            return self._exit_status
        try:
            info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # someone else reaped it
            return self._proc.poll()
        if info is None:
            return None
        if info.si_code == os.CLD_EXITED:
            self._exit_status = info.si_status
        else:  # CLD_KILLED / CLD_DUMPED
            self._exit_status = -info.si_status
        return self._exit_status

    def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds for the main process to exit; its exit code, or None if still running."""
        if self._proc is None:
            raise RuntimeError("not started")
        deadline = time.monotonic() + timeout
        pidfd: int | None
        try:
            pidfd = os.pidfd_open(self._proc.pid)  # readable when the process exits; no polling delay
        except (AttributeError, OSError):
            pidfd = None
        try:
            while True:
                code = self.poll()
                if code is not None:
                    return code
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if pidfd is not None:
                    _wait_readable(pidfd, remaining)
                else:
                    time.sleep(min(0.05, remaining))
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM everything, wait up to `grace`, SIGKILL what is left (including escaped grandchildren
        found by the marker), reap. Idempotent; safe to call on a process that never started."""
        if self._stopped:
            return
        self._stopped = True
        proc = self._proc
        try:
            if proc is not None:
                self._terminate_all(proc.pid, grace)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # uninterruptible sleep; nothing more we can do
                    log.warning("sandboxed process %d did not die after SIGKILL", proc.pid)
                else:
                    if self._exit_status is None:
                        self._exit_status = proc.returncode
        finally:
            self._finish_reader()
            if self._home:
                remove_tree(self._home)
            _LIVE.discard(self)

    def _terminate_all(self, group: int, grace: float) -> None:
        # The leader is not reaped yet (see poll), so `group` still names our process group.
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGTERM)
        for pid in processes_with_marker(self.marker, group):
            _signal(pid, signal.SIGTERM, self.marker, group)
        deadline = time.monotonic() + max(0.0, grace)
        while time.monotonic() < deadline and processes_with_marker(self.marker, group):
            time.sleep(0.05)
        # Repeat until a scan finds nothing: a process may fork between a scan and its kill.
        for _ in range(200):
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
            left = processes_with_marker(self.marker, group)
            if not left:
                return
            for pid in left:
                _signal(pid, signal.SIGKILL, self.marker, group)
            time.sleep(0.01)
        log.warning("sandbox: processes %s survived SIGKILL", processes_with_marker(self.marker, group))

    def __enter__(self) -> Self:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- output

    def _read_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            if not _wait_readable(fd, 0.1):
                if self._abandon_reader.is_set():
                    return
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._buf += chunk
                excess = len(self._buf) - self.log_cap
                if excess > 0:
                    del self._buf[:excess]
                    self.dropped_bytes += excess

    def _finish_reader(self) -> None:
        if self._reader is not None:
            # Every writer is dead now, so EOF comes at once; the bound only guards against a writer we
            # could not kill keeping the pipe open.
            self._reader.join(timeout=2)
            self._abandon_reader.set()
            self._reader.join(timeout=1)
        if self._proc is not None and self._proc.stdout is not None and not (self._reader and self._reader.is_alive()):
            self._proc.stdout.close()

    def output(self) -> str:
        """Everything captured so far (at most `log_cap` bytes: the tail), decoded leniently."""
        with self._lock:
            data = bytes(self._buf)
        return data.decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of combined stdout+stderr (grader.text.log_tail: a long line is cut)."""
        return log_tail(self.output(), lines)

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0


# --------------------------------------------------------------------------------------------- one-shot runs


@dataclass
class CompletedRun:
    returncode: int | None  # None when it timed out (it was then stopped)
    timed_out: bool
    output: str  # combined stdout+stderr, the last log_cap bytes at most
    truncated: bool = False  # output lost its beginning to the cap


async def run_sandboxed(
    argv: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    *,
    timeout: float,
    log_cap: int = DEFAULT_LOG_CAP,
    yields: bool = False,
) -> CompletedRun:
    """Run to completion (or `timeout`), then stop whatever is left (background children included).

    Never raises for the student's failure: a crash, a missing program or a timeout are in the result.
    Cancelling it (a check's own timeout, Ctrl-C) stops the process at once, so no worker thread is left
    waiting for it to end on its own. `yields`: at a low processor priority (see YIELDING_NICE).
    """
    proc = SandboxedProcess(argv, cwd, env, log_cap=log_cap, yields=yields)
    with proc:
        code = await asyncio.to_thread(proc.wait, timeout)
    return _completed(proc, code)


def _completed(proc: SandboxedProcess, code: int | None) -> CompletedRun:
    return CompletedRun(returncode=code, timed_out=code is None, output=proc.output(), truncated=proc.truncated)


def _wait_readable(fd: int, timeout: float) -> bool:
    """True when `fd` is readable within `timeout` seconds. poll(), not select(): a grading run opens many
    sockets, and select() fails outright on descriptors numbered 1024 and above."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))
