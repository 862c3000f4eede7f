"""A process that imports the grader once and forks each submission's `grader check` child from there.

Starting a child afresh costs it about 0.8 s of processor time before it grades anything: the interpreter
imports the grader, httpx, redis-py and the checks. A batch pays that once per submission, at every --jobs. The
fork server pays it once per batch: it imports those modules, never grades, and forks a child per request, which
then runs `grader check` in a process exactly as fresh as a new one would be (nothing of a grading ever runs in
the server, and the server has no threads to fork in a half-held state).

The child is set up as the supervisor sets up a subprocess: its own session, standard input from /dev/null,
output into the pipe it is given, the result pipe as descriptor 3, every other descriptor closed, the
environment it is given, Python's own SIGINT handler, not dumpable. Its session and handler are in place before
the supervisor learns its pid, so a SIGINT to its session (a timeout, Ctrl-C) always finds them. The server reaps
its children and reports each exit code; `ForkedChild` gives the supervisor the part of `subprocess.Popen` it uses.

The server's own code is grader/batch/forks.py. The channel is an anonymous socket pair that only the server holds (it is not dumpable either, so no
submission can reach its descriptors through /proc), and the server ends when the batch closes it or dies.
When the server cannot start, the batch starts each child afresh, as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from grader import procfs

log = logging.getLogger(__name__)

CHILD_RESULT_FD = 3  # where a forked child finds its result pipe (its --result-fd)
# Set to 0, the batch starts every child afresh (a platform where forking after these imports misbehaves).
SWITCH_VAR = "REDIS_GRADER_FORK_SERVER"
READY_TIMEOUT_S = 60.0  # the imports take about a second; a server that says nothing for this long is not used
REPLY_TIMEOUT_S = 30.0  # for the pid of a child just asked for
MAX_MESSAGE = 1024 * 1024  # a request is an argv and an environment, a few KiB

def preload() -> None:
    """What every child imports before it grades (the server's one-time work)."""
    import httpcore  # noqa: F401 - httpx imports it only when its first client is made
    import redis.asyncio  # noqa: F401

    import grader.cli
    import grader.probe
    import grader.proxy
    import grader.runner  # noqa: F401
    from grader.checking import load_checks

    load_checks()


class ServerGone(OSError):
    """The fork server ended: the supervisor starts children afresh from now on."""


class ForkedChild:
    """A child of the fork server, as the supervisor sees a subprocess.Popen: pid, poll(), wait(), returncode.
    Its exit code comes from the server, which reaps it; a negative code names the signal that killed it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = threading.Event()

    def _ended(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"grader check (pid {self.pid})", timeout or 0)
        assert self.returncode is not None
        return self.returncode


class ForkServer:
    """The server process and its channel. start() once; spawn() from any thread; close() at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._channel: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._replies: dict[int, int] = {}  # request id -> pid
        self._children: dict[int, ForkedChild] = {}  # pid -> child, until it exits
        self._early_exits: dict[int, int] = {}  # pid -> code, for an exit reported before its reply was read
        self._next_id = 0
        self._gone = False

    def start(self) -> bool:
        """Start the server and wait for its imports; False (and nothing left running) when it cannot serve, or
        when SWITCH_VAR says not to."""
        if os.environ.get(SWITCH_VAR, "1").strip() == "0":
            return False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "grader.batch.forks", str(theirs.fileno()), str(MAX_MESSAGE)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), env=self._env, start_new_session=True,
            )
        except OSError as exc:
            log.warning("no fork server (%s): each submission's grader starts afresh", exc)
            ours.close()
            return False
        finally:
            theirs.close()
        self._channel = ours
        ready = self._first_message(READY_TIMEOUT_S)
        if ready.get("ready") is not True:
            log.warning("no fork server (%s): each submission's grader starts afresh",
                        ready.get("failed", "it did not start"))
            self.close()
            return False
        threading.Thread(target=self._read, name="grader-batch-forkserver", daemon=True).start()
        return True

    def _first_message(self, timeout: float) -> dict[str, Any]:
        assert self._channel is not None
        self._channel.settimeout(timeout)
        try:
            message = self._channel.recv(MAX_MESSAGE)
        except OSError:
            return {}
        finally:
            self._channel.settimeout(None)
        try:
            found = json.loads(message) if message else {}
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    def spawn(self, argv: list[str], env: dict[str, str], output_fd: int, result_fd: int) -> ForkedChild:
        """A child running `grader <argv>` with `env`, its output into `output_fd`, its result into `result_fd`
        (its descriptor 3). Raises ServerGone when the server no longer answers."""
        with self._state:
            if self._gone or self._channel is None:
                raise ServerGone("the fork server has ended")
            self._next_id += 1
            request_id = self._next_id
        message = json.dumps({"id": request_id, "argv": argv, "env": env}).encode()
        try:
            with self._send_lock:
                socket.send_fds(self._channel, [message], [output_fd, result_fd])
        except OSError as exc:
            raise ServerGone(f"the fork server has ended: {exc}") from None
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        with self._state:
            while request_id not in self._replies:
                left = deadline - time.monotonic()
                if self._gone or left <= 0:
                    raise ServerGone("the fork server did not answer")
                self._state.wait(left)
            pid = self._replies.pop(request_id)
            child = ForkedChild(pid)
            if pid in self._early_exits:
                child._ended(self._early_exits.pop(pid))
            else:
                self._children[pid] = child
            return child

    def _read(self) -> None:
        assert self._channel is not None
        while True:
            try:
                message = self._channel.recv(MAX_MESSAGE)
                note = json.loads(message) if message else None
            except (OSError, ValueError):
                note = None
            if not isinstance(note, dict):
                self._lost()
                return
            with self._state:
                if "exited" in note:
                    child = self._children.pop(note["exited"], None)
                    if child is not None:
                        child._ended(int(note["code"]))
                    else:
                        self._early_exits[int(note["exited"])] = int(note["code"])
                elif "id" in note:
                    self._replies[int(note["id"])] = int(note["pid"])
                self._state.notify_all()

    def _lost(self) -> None:
        """The server ended (killed, or the batch is closing): children still running are orphans now, and their
        exit codes are lost. Each is reported as killed once it has ended, so its result is not trusted."""
        with self._state:
            self._gone = True
            orphans = list(self._children.values())
            self._children.clear()
            self._state.notify_all()
        for child in orphans:
            threading.Thread(target=_wait_for_orphan, args=(child,), daemon=True).start()

    def close(self) -> None:
        """End the server (it exits once its channel closes). Children still running are not touched."""
        if self._channel is not None:
            with contextlib.suppress(OSError):
                self._channel.shutdown(socket.SHUT_RDWR)
            self._channel.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _wait_for_orphan(child: ForkedChild) -> None:
    while (info := procfs.stat(child.pid)) is not None and info.alive:
        time.sleep(0.2)
    child._ended(-signal.SIGKILL)
