"""The child-process supervisor: one `grader check` subprocess per submission, its timeout, and killing its tree.

Why subprocesses: a submission that crashes the harness, leaks a thread or hangs forever must cost only
its own row. Each child runs in its own session, so a wall-clock timeout can stop it (SIGINT first, so
it stops its app, Redis and container itself; SIGKILL to what is left after a grace) without touching
the batch or the other children. The children are forked from a server that has imported the grader once
(grader/batch/forkserver.py); where it cannot run, each starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from grader import procfs
from grader.commands import Interrupted
from grader.errors import UsageError
from grader.result import Submission, failed_to_grade
from grader.sandbox import MARKER_VAR
from grader.services import remove_orphaned_containers
from grader.tempdirs import remove_tree, sweep_orphaned_tempdirs

from . import sources
from .forkserver import CHILD_RESULT_FD, ForkedChild, ForkServer, ServerGone
from .integrity import KEY_VAR
from .plan import BatchOptions, SubmissionDir, submission_settings
from .store import LOG, write_submission

logger = logging.getLogger(__name__)

BATCH_VAR = "REDIS_GRADER_BATCH"
RESULT_CAP = 32 * 1024 * 1024  # a result document is a few hundred KiB; more is not one

# The child runs `grader check` with SIGINT restored to Python's default handler: a shell that starts
# the batch in the background sets SIGINT to "ignore", children inherit that, and then the graceful
# stop (KeyboardInterrupt -> every context manager cleans up) would silently turn into a hard kill.
# It also makes itself not dumpable (PR_SET_DUMPABLE 0): then the submission's app, although it runs as
# the same user, cannot open the child's descriptors through /proc/<pid>/fd to write into its result
# pipe (root is not held back by this). Programs it execs are dumpable again.
_CHILD = (
    "import ctypes, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(4, 0)\n"
    "except Exception:\n"
    "    pass\n"
    "from grader.cli import main\n"
    "main(['check', *sys.argv[1:]], prog_name='grader')\n"
)


def check_argv(sub: SubmissionDir, options: BatchOptions, result_fd: int) -> list[str]:
    """The `grader check` command line for one submission (after the interpreter and -c). The result comes
    back through the inherited descriptor `result_fd`: no path of the results folder is on the command line,
    which every process of the machine can read (the submission's app included)."""
    rubric = options.rubric
    if Path(rubric).suffix == ".toml" or Path(rubric).exists():
        rubric = str(Path(rubric).resolve())  # the child's cwd is the batch's, but be explicit
    argv = [
        str(sub.path.resolve()),
        "--no-color",
        "--rubric", rubric,
        "--redis", options.redis,
        "--redis-image", options.redis_image,
        "--env", options.env,
        "--start-timeout", f"{options.start_timeout:g}",
        "--runtime", options.runtime,
        "--app-image", options.app_image,
        "--result-fd", str(result_fd),
    ]  # fmt: skip
    if options.docs_url:
        argv += ["--docs-url", options.docs_url]
    for pattern in options.only:
        argv += ["--only", pattern]
    return argv


def _child_env(token: str | None) -> dict[str, str]:
    """A child's environment (`token` None: the fork server's, which marks no child)."""
    env = dict(os.environ)
    env.pop(BATCH_VAR, None)
    if token is not None:
        env[BATCH_VAR] = token  # marks the child and whatever inherits its environment (see processes_of)
    env.pop(KEY_VAR, None)  # where the signing key is: the child signs nothing, and its app must not learn it
    # The child must import this very grader, also when it runs from a source checkout and the batch's cwd
    # is elsewhere. An installed grader is importable anyway (and site-packages must not go before stdlib).
    package_root = str(Path(__file__).resolve().parents[2])
    installed = {str(Path(p).resolve()) for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    if package_root not in installed:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.pop("FORCE_COLOR", None)
    return env


def error_document(sub: SubmissionDir, reason: str, duration_s: float) -> dict[str, Any]:
    """The same shape `grade()` returns when it cannot grade, so the gradebook has a row for it."""
    doc = failed_to_grade(
        Submission(sub.name, str(sub.path.resolve())), None, reason, duration_s=duration_s,
        environment={"runtime": "local", "redis": None},
    )
    doc["error"] = " ".join(reason.split())  # one line, whatever the cause printed
    return doc


def _source_text(sub: SubmissionDir) -> str:
    """What the student handed in: the folder or archive (absolute), or the roster's repository as written."""
    return sub.repo if sub.repo is not None else str(sub.path.resolve())


def _last_error_line(log_path: Path) -> str | None:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("grader: error: "):
            return line.removeprefix("grader: error: ").strip()
    tail = [line.strip() for line in lines if line.strip()]
    return tail[-1][:300] if tail else None


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# --------------------------------------------------------------------------------------------- the child's tree


def processes_of(root: int, token: str) -> set[int]:
    """The child `root`, everything below it, and everything that carries its marks: the batch token (the
    child and what inherits its environment, such as a local redis-server) or a sandbox marker found on a
    process of the tree (so an app's grandchild that double-forked away from the tree is found too)."""
    table = procfs.live_processes()
    children: dict[int, list[int]] = {}
    for pid, info in table.items():
        children.setdefault(info.ppid, []).append(pid)
    tree, todo = set(), [root] if root in table else []
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, []))
    needles = {f"\0{BATCH_VAR}={token}\0".encode()}
    prefix = f"\0{MARKER_VAR}=".encode()
    for pid in tree:
        env = procfs.environ(pid)
        at = env.find(prefix)
        if at >= 0:
            needles.add(env[at : env.index(b"\0", at + 1) + 1])
    me = os.getpid()
    return tree | {pid for pid in table if pid != me and any(n in procfs.environ(pid) for n in needles)}


def sweep(token: str) -> None:
    """After a child has exited: kill anything still carrying its batch token (a local redis-server the
    child failed to stop). Normally there is nothing."""
    me = os.getpid()
    for pid in procfs.live_processes():
        if pid != me and procfs.has_env_entry(pid, BATCH_VAR, token):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


Child = subprocess.Popen[bytes] | ForkedChild  # started afresh, or forked by the fork server


def kill_tree(proc: Child, token: str) -> None:
    """SIGKILL the child and everything it started. Its app and Redis run in sessions of their own, so a
    process-group kill would orphan them: freeze everything first (SIGSTOP, until a scan finds nothing new,
    so nothing forks away), then kill what was frozen."""
    frozen: set[int] = set()
    for _ in range(50):
        fresh = processes_of(proc.pid, token) - frozen
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= fresh
    for pid in frozen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    remove_orphaned_containers()  # the child's Redis container, which it had no chance to remove
    sweep_orphaned_tempdirs()  # and its workspace copy, homes and Redis folders


def _with_pipes(log: BinaryIO, start: Callable[[int, int], Child]) -> tuple[Child, Drain, Drain]:
    """`start(output, result)` with the write ends of two new pipes: the child's output, drained into `log`, and
    its result document, read into memory."""
    result_read, result_write = os.pipe()
    output_read, output_write = os.pipe()
    try:
        proc = start(output_write, result_write)
    except BaseException:
        os.close(result_read)
        os.close(output_read)
        raise
    finally:  # the child holds the write ends now: EOF comes when it (and anything it passed them to) is gone
        os.close(result_write)
        os.close(output_write)
    return proc, Drain(result_read, cap=RESULT_CAP), Drain(output_read, sink=log)


# --------------------------------------------------------------------------------------------- one submission


class Grader:
    """Runs `grader check` subprocesses; stop() interrupts every running one (Ctrl-C)."""

    def __init__(self, options: BatchOptions) -> None:
        self.options = options
        self._stop = threading.Event()  # Ctrl-C: interrupt the running children, start no new ones
        self._hurry = threading.Event()  # a second Ctrl-C: no grace, kill at once
        self.workdir: Path | None = None  # where clones and archives are unpacked (made on first need)
        self._workdir_lock = threading.Lock()
        self._forks: ForkServer | None = None  # started with the first child; None again if it ends
        self._forks_tried = False
        self._forks_lock = threading.Lock()

    def stop(self, *, hurry: bool = False) -> None:
        self._stop.set()
        if hurry:
            self._hurry.set()

    def grade(self, sub: SubmissionDir) -> dict[str, Any] | None:
        """Grade one submission and write its files; the result document, or None if the batch was
        interrupted before it finished (then nothing is written, so a resumed run grades it).

        The child gets no path into the results folder, not even as an open file: its result document comes
        back through a pipe and its output through another, and only this process writes the files."""
        if self._stop.is_set():
            return None
        folder = self.options.out / sub.name
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            ready, origin = self._prepare(sub, started)
        except Interrupted:  # Ctrl-C while cloning or reading git: nothing is known of the submission yet
            return None
        except Exception as exc:  # noqa: BLE001 - a clone or an archive that failed costs its own row, whatever it was
            reason = str(exc) if isinstance(exc, UsageError) else f"{sub.name}: could not be read: {type(exc).__name__}: {exc}"
            doc = error_document(sub, reason, time.monotonic() - started)
            doc["submission"]["path"] = _source_text(sub)
            write_submission(folder, doc, submission_settings(self.options, sub))
            return doc
        try:
            doc = self._grade_folder(ready, folder, started)
        finally:
            if ready.path != sub.path:
                remove_tree(ready.path)
        if doc is None:
            return None
        submission = dict(doc["submission"])
        if ready.path != sub.path:  # graded from a clone or an unpacked archive: name what the student handed in
            submission["path"] = _source_text(sub)
        if origin.commit is not None:
            submission.update(commit=origin.commit, dirty=bool(origin.dirty))
        doc["submission"] = submission
        write_submission(folder, doc, submission_settings(self.options, sub))
        return doc

    def _prepare(self, sub: SubmissionDir, started: float) -> tuple[SubmissionDir, sources.Origin]:
        """The submission as a folder on disk (a roster row cloned, an archive unpacked) and its commit. A clone
        counts against the submission's --timeout; Ctrl-C stops it (commands.Interrupted)."""
        stopped = self._stop.is_set
        if sub.kind == "folder":
            return sub, sources.git_origin(sub.path, stopped)
        with self._workdir_lock:
            if self.workdir is None:
                self.workdir = sources.materialize_dir()
        dest = self.workdir / sub.name
        remove_tree(dest)
        if sub.kind == "archive":
            sources.unpack(sub.path, dest)
        else:
            entry = sources.RosterEntry(sub.name, sub.repo or str(sub.path), sub.commit)
            left = self.options.timeout - (time.monotonic() - started)
            sources.clone(entry, dest, timeout=max(1.0, min(left, sources.GIT_TIMEOUT_S)), stopped=stopped)
        return SubmissionDir(sub.name, dest), sources.git_origin(dest, stopped)

    def close(self) -> None:
        """End the fork server; remove the clones and unpacked archives."""
        with self._forks_lock:
            if self._forks is not None:
                self._forks.close()
                self._forks = None
        if self.workdir is not None:
            remove_tree(self.workdir)
            self.workdir = None

    def _grade_folder(self, sub: SubmissionDir, folder: Path, started: float) -> dict[str, Any] | None:
        token = secrets.token_hex(16)
        with open(folder / LOG, "wb") as log:
            proc, result, output = self._start(sub, token, log)
            try:
                code, timed_out = self._wait(proc, started, token)
            finally:
                sweep(token)
                output.finish()
                result.finish()
        duration = time.monotonic() - started
        if code is None and not timed_out:
            return None
        return self._read_result(sub, result, folder / LOG, code, timed_out, duration)

    def _start(self, sub: SubmissionDir, token: str, log: BinaryIO) -> tuple[Child, Drain, Drain]:
        """The child: forked by the fork server, or started afresh when there is none (or it has just ended: then
        with new pipes, so that a child it may have forked before it ended writes into nothing that is read)."""
        forks = self._fork_server()
        if forks is not None:
            try:
                return _with_pipes(log, lambda output, result: forks.spawn(
                    ["check", *check_argv(sub, self.options, CHILD_RESULT_FD)], _child_env(token), output, result))
            except ServerGone as exc:
                logger.warning("%s: each submission's grader starts afresh from now on", exc)
                with self._forks_lock:
                    if self._forks is forks:
                        self._forks = None
                forks.close()
        return _with_pipes(log, lambda output, result: subprocess.Popen(
            [sys.executable, "-c", _CHILD, *check_argv(sub, self.options, result)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, pass_fds=(result,),
            env=_child_env(token),
            start_new_session=True,  # its own process group: Ctrl-C on the terminal is the batch's to relay
        ))

    def _fork_server(self) -> ForkServer | None:
        with self._forks_lock:
            if not self._forks_tried:
                self._forks_tried = True
                forks = ForkServer(_child_env(None))
                self._forks = forks if forks.start() else None
            return self._forks

    def _wait(self, proc: Child, started: float, token: str) -> tuple[int | None, bool]:
        """(exit code, timed out). The code is None when the batch was interrupted."""
        deadline = started + self.options.timeout
        while True:
            try:
                return proc.wait(timeout=0.2), False
            except subprocess.TimeoutExpired:
                pass
            if self._stop.is_set():
                self._end(proc, token)
                return None, False
            if time.monotonic() >= deadline:
                self._end(proc, token)
                return proc.returncode, True

    def _end(self, proc: Child, token: str) -> None:
        """SIGINT (the child's KeyboardInterrupt path stops its app, Redis and container), then SIGKILL
        the whole tree after the grace."""
        if not self._hurry.is_set():
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGINT)
            deadline = time.monotonic() + self.options.grace
            while time.monotonic() < deadline and not self._hurry.is_set():
                try:
                    proc.wait(timeout=0.2)
                    return
                except subprocess.TimeoutExpired:
                    continue
        if proc.poll() is None:
            kill_tree(proc, token)

    def _read_result(
        self, sub: SubmissionDir, result: Drain, log: Path, code: int | None, timed_out: bool, duration: float
    ) -> dict[str, Any]:
        if timed_out:
            return error_document(sub, f"grading did not finish within {self.options.timeout:g} s and was stopped", duration)
        doc: Any = None
        # Only a child that ended on its own said its last word; one killed by a signal may have been
        # killed after something else wrote into its channel.
        if result.data and code is not None and code >= 0:
            try:
                doc = json.loads(result.data.decode("utf-8")) if not result.overflowed else None
            except (UnicodeDecodeError, ValueError) as exc:
                return error_document(sub, f"the grader wrote an unreadable result: {exc}", duration)
        if isinstance(doc, dict) and doc.get("status") in ("graded", "error"):
            submission = doc.get("submission") if isinstance(doc.get("submission"), dict) else {}
            doc["submission"] = {**submission, "name": sub.name}  # the folder name is the batch's key
            if doc["status"] == "error" and not doc.get("error"):
                doc["error"] = f"the grader {_exit_text(code or 0)} without saying why"
            return doc
        why = _last_error_line(log)
        reason = f"the grader {_exit_text(code if code is not None else -9)} without a result"
        return error_document(sub, f"{reason}: {why}" if why else reason, duration)


class Drain:
    """Reads a pipe to its end in a thread of its own (a child blocks once a pipe's buffer is full): into
    `sink`, or into `data` up to `cap` bytes."""

    def __init__(self, fd: int, *, sink: BinaryIO | None = None, cap: int = 0) -> None:
        self.fd, self.sink, self.cap = fd, sink, cap
        self.data = bytearray()
        self.overflowed = False
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"grader-batch-drain-{fd}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not self._abandon.is_set():
            if not poller.poll(100):
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            if self.sink is not None:
                self.sink.write(chunk)
            elif len(self.data) + len(chunk) > self.cap:
                self.overflowed = True
            else:
                self.data += chunk

    def finish(self) -> None:
        """Once the child is gone: wait for the end of the pipe, briefly (a grandchild that escaped with the
        write end must not hold the batch), then close it."""
        self._thread.join(timeout=5)
        self._abandon.set()
        self._thread.join()
        os.close(self.fd)
