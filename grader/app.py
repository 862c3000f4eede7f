"""Start the student's FastAPI app with uvicorn in a sandboxed process and wait until it answers HTTP.

The app is never imported here: uvicorn imports it in the child, and a failure to start is diagnosed
from the child's log (`likely_cause`).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from grader import procfs
from grader.ports import free_port
from grader.sandbox import SandboxedProcess, processes_with_marker

if TYPE_CHECKING:  # typing.Self is 3.11+; the package supports 3.10
    from typing_extensions import Self

PORT_ATTEMPTS = 3
POLL_INTERVAL = 0.02  # a refused connection costs microseconds; the first answer is seen within 20 ms
READY_POLL_TIMEOUT = 2.0  # one readiness poll, connect to status line, in all
# A startup that has not answered yet, whose processes have used no processor time at all and whose log has not
# grown for this long, waits for something that will never come, and is judged hung instead of waited out to the
# start timeout. Working startups never look like that: importing heavy modules uses the processor, and an app
# waiting on its Redis (which is up) is answered at once. What does look like that is a deliberate sleep, and a
# `time.sleep(5)` "to give Redis time" must still pass: the period is twice that. The trade-off: a startup that
# sleeps longer than the period is judged hung too, and a real hang costs the period instead of the whole start
# timeout (30 s by default).
QUIET_PERIOD_S = 10.0
ACTIVITY_SAMPLE_S = 1.0  # how often the app's processor time and log length are read while it does not answer
HUNG_STOP_GRACE_S = 1.0  # a hung startup has nothing to shut down cleanly: SIGKILL sooner than the usual grace
# Once the checks are done nothing the app does on its way out is judged, and uvicorn's graceful shutdown (it
# notices SIGTERM on its next 0.1 s tick, then closes connections and runs the lifespan's end) costs ~0.2 s of
# every grading: the app is killed at once.
END_STOP_GRACE_S = 0.0


@dataclass
class AppLaunch:
    python: str  # interpreter of the submission's environment
    app_dir: Path  # cwd for uvicorn (e.g. <workspace>/backend)
    target: str  # "app.main:app"
    env: dict[str, str] = field(default_factory=dict)  # REDIS_URL etc., set by the caller


@dataclass
class AppStart:
    ready: bool
    base_url: str
    port: int
    failure: str | None  # one line, e.g. "exited with code 1 before answering" (see start_failure)
    startup_s: float


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


class RunningApp:
    """The student's app under uvicorn. A context manager: `stop()` on exit (start() is called explicitly)."""

    def __init__(
        self, launch: AppLaunch, *, start_timeout: float = 30.0, ready_ip: str = "127.0.0.2",
        quiet_s: float = QUIET_PERIOD_S,
    ) -> None:  # fmt: skip
        if ready_ip == "127.0.0.1":
            # uvicorn trusts X-Forwarded-For from 127.0.0.1; the readiness polls must look like one plain client.
            raise ValueError("ready_ip must not be 127.0.0.1")
        self.launch = launch
        self.start_timeout = start_timeout
        self.quiet_s = quiet_s  # no progress for this long before answering: hung (QUIET_PERIOD_S)
        self.ready_ip = ready_ip
        self.port: int | None = None
        self._proc: SandboxedProcess | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self, port: int) -> list[str]:
        return [
            self.launch.python, "-m", "uvicorn", self.launch.target,
            "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--lifespan", "auto",
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        # The environment's bin/ first on PATH, as if activated, so tools the app shells out to resolve there.
        bin_dir = str(Path(self.launch.python).parent)
        return {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", os.defpath), **self.launch.env}

    def start(self) -> AppStart:
        """Launch uvicorn and poll until any HTTP response, the process exits, or start_timeout passes.

        On failure the process is already stopped; log_tail() and likely_cause() still work.
        """
        if self._proc is not None:
            raise RuntimeError("RunningApp.start() called twice")
        started = time.monotonic()
        deadline = started + self.start_timeout
        for attempt in range(PORT_ATTEMPTS):
            self.port = free_port()
            self._proc = SandboxedProcess(self._argv(self.port), self.launch.app_dir, self._env()).start()
            state = self._wait_ready(self._proc, deadline)
            if state == "ready":
                return AppStart(True, self.base_url, self.port, None, time.monotonic() - started)
            code = self._proc.poll()
            elapsed = time.monotonic() - started  # before stop(): its grace is not startup time
            if state == "hung":
                self._proc.stop(grace=HUNG_STOP_GRACE_S)
            else:
                self._proc.stop()
            if state == "exited" and attempt + 1 < PORT_ATTEMPTS and _lost_port_race(self._proc.output()):
                continue  # someone took the port between our probe and uvicorn's bind
            ended = _exit_text(code) if code is not None else None
            failure = start_failure(state, ended, self.start_timeout, self.quiet_s, self._proc.output())
            return AppStart(False, self.base_url, self.port, failure, elapsed)
        raise AssertionError("unreachable")

    def _wait_ready(self, proc: SandboxedProcess, deadline: float) -> str:
        """"ready", "exited", "hung" or "timeout" (see wait_until_answering)."""
        port = self.port

        def connect(timeout: float) -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(self.ready_ip, 0))

        return wait_until_answering(
            lambda: proc.poll() is not None, lambda t: root_status(connect, t), deadline,
            QuietWatch(lambda: process_tree_activity(proc), self.quiet_s),
        )  # fmt: skip

    @property
    def process(self) -> SandboxedProcess | None:
        """The sandboxed uvicorn process of the last start attempt (None before start())."""
        return self._proc

    def poll(self) -> int | None:
        """The app's exit code if it has exited, else None."""
        return self._proc.poll() if self._proc is not None else None

    def log_tail(self, lines: int = 40) -> str:
        return self._proc.log_tail(lines) if self._proc is not None else ""

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop(grace=END_STOP_GRACE_S)

    def likely_cause(self) -> str | None:
        """One line naming the probable reason the app did not start, read from its log; None if unclear."""
        if self._proc is None:
            return None
        return diagnose_startup_log(self._proc.output(), self.launch.target, self.launch.app_dir)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _lost_port_race(log: str) -> bool:
    return "address already in use" in log.lower()


# --------------------------------------------------------------------------------------------- readiness

_STATUS_LINE = re.compile(rb"HTTP/\d(?:\.\d)? (\d{3})")


def root_status(
    connect: Callable[[float], socket.socket], timeout: float, forwarded_for: str | None = None
) -> int | None:
    """The status of `GET /`, read from the status line alone, within `timeout` seconds in all (connecting
    included); None when there is no answer in time. The body is never read: a `/` that streams forever or
    drips its bytes cannot hold the poll."""
    deadline = time.monotonic() + timeout
    header = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    request = f"GET / HTTP/1.1\r\nHost: app\r\n{header}Connection: close\r\n\r\n".encode()
    received = b""
    try:
        with connect(timeout) as sock:
            sock.sendall(request)
            while b"\r\n" not in received and len(received) < 4096:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
    except OSError:
        return None
    match = _STATUS_LINE.match(received)
    return int(match.group(1)) if match else None


def wait_until_answering(
    exited: Callable[[], bool], status: Callable[[float], int | None], deadline: float,
    quiet: QuietWatch | None = None,
) -> str:  # fmt: skip
    """Poll until the app answers HTTP: "ready", "exited", "hung" (`quiet` saw no progress for its period) or
    "timeout". Any status counts: a rate limiter may well answer 429."""
    while True:
        if exited():
            return "exited"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        if status(min(READY_POLL_TIMEOUT, max(0.2, remaining))) is not None:
            # Whoever answered, the app must still be alive: a process that won the port race could answer
            # while ours has just failed to bind.
            return "exited" if exited() else "ready"
        if quiet is not None and quiet.hung():
            return "exited" if exited() else "hung"
        time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


# --------------------------------------------------------------------------------------------- hang detection


@dataclass
class QuietWatch:
    """Whether a startup has stopped making progress: `activity` is a fingerprint of what the app has done so far
    (its processes' processor time, its log's length), read every ACTIVITY_SAMPLE_S; the startup is hung once
    it has not changed for `quiet_s`. A fingerprint of None means "cannot tell": never hung then."""

    activity: Callable[[], Hashable | None]
    quiet_s: float = QUIET_PERIOD_S
    _seen: Hashable | None = field(default=None, init=False)
    _since: float = field(default=0.0, init=False)  # when _seen was first read: the last change came no later
    _next_sample: float = field(default=0.0, init=False)

    def hung(self) -> bool:
        now = time.monotonic()
        if now >= self._next_sample:
            self._next_sample = now + ACTIVITY_SAMPLE_S
            seen = self.activity()
            if seen is None or seen != self._seen:
                self._seen, self._since = seen, now
        return self._seen is not None and now - self._since >= self.quiet_s


def process_tree_activity(proc: SandboxedProcess) -> Hashable:
    """The local fingerprint: every live process of the app (its group, and whatever carries its marker after
    leaving it) with its processor time, and the length of its log. Any process that runs, starts or ends, and
    any line logged, changes it."""
    work = frozenset(
        (info.pid, info.start_ticks, info.cpu_ticks)
        for info in map(procfs.stat, processes_with_marker(proc.marker, proc.pid))
        if info is not None
    )
    return work, proc.dropped_bytes + len(proc.output())


_LOG_LEVEL = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):\s+")
LAST_WORDS_CHARS = 120


def start_failure(state: str, ended: str | None, start_timeout: float, quiet_s: float, log: str) -> str:
    """AppStart.failure of a start that ended in `state` (wait_until_answering) other than "ready"; `ended` is
    how the process ended ("exited with code 1"), if it did; `log` is its output."""
    if state == "exited" and ended is not None:
        return f"{ended} before answering"
    if state == "hung":
        lines = [line.strip() for line in log.splitlines() if line.strip()]
        last = _LOG_LEVEL.sub("", lines[-1]) if lines else ""
        if len(last) > LAST_WORDS_CHARS:
            last = last[: LAST_WORDS_CHARS - 3] + "..."
        where = f' after "{last}"' if last else " before logging anything"
        return f"its startup has made no progress for {quiet_s:g} s (no processor time used, nothing logged){where}"
    return f"did not answer HTTP within {start_timeout:g} s"


# --------------------------------------------------------------------------------------------- diagnosis

_NO_MODULE = re.compile(r"No module named '?([\w.]+)'?")
_UVICORN_NO_MODULE = re.compile(r'Error loading ASGI app\. Could not import module "([^"]+)"')
_UVICORN_NO_ATTR = re.compile(r'Error loading ASGI app\. Attribute "([^"]+)" not found in module "([^"]+)"')
_UVICORN_BAD_FORMAT = re.compile(r'Error loading ASGI app\. Import string "([^"]+)" must be in format')
_SYNTAX = re.compile(r"^\s*(SyntaxError|IndentationError|TabError): (.+)$", re.MULTILINE)
_FILE_LINE = re.compile(r'^\s*File "([^"]+)", line (\d+)', re.MULTILINE)
_CANNOT_IMPORT = re.compile(r"^\s*ImportError: (cannot import name .+)$", re.MULTILINE)
_REDIS_DOWN = re.compile(r"Error [^\n]{0,300}? connecting to ([\w.\-\[\]]+:\d+)")
_EXCEPTION = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)(?::.*)?)$", re.MULTILINE)


def _shown_path(path: str, app_dir: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(app_dir.resolve()))
    except (ValueError, OSError):
        return Path(path).name


def _own_module(top: str, base: Path) -> bool:
    return (base / f"{top}.py").is_file() or (base / top).is_dir()


def _missing_module(name: str, module: str, app_dir: Path) -> str:
    """Why `No module named <name>`: a missing package, a wrong module path, or an import of the wrong form."""
    top = name.split(".")[0]
    if top == "uvicorn":
        return "missing dependency: uvicorn is not installed in the submission's environment"
    if module == name or module.startswith(name + "."):
        return f"wrong module path: there is no module {name!r} in {app_dir.name}/, so uvicorn cannot import {module!r}"
    if _own_module(top, app_dir):
        return f"import error: No module named {name!r} (a module of the submission itself)"
    if _own_module(top, app_dir.parent):
        return (
            f"import error: No module named {name!r}: the app runs from {app_dir.name}/, "
            f"so imports must not start with {top}."
        )
    return f"missing dependency: No module named {name!r} (is its package in requirements.txt?)"


def diagnose_startup_log(log: str, target: str, app_dir: Path) -> str | None:
    """The likely cause of a failed start, from uvicorn's output. Pure: unit-testable without processes.

    The checks run from the most specific message to the most general one.
    """
    module = target.split(":", 1)[0]

    if m := _UVICORN_NO_MODULE.search(log):
        return (
            f"wrong module path: uvicorn could not import module {m.group(1)!r} from {app_dir.name}/ "
            f"(is there a {m.group(1).replace('.', '/')}.py?)"
        )
    if m := _UVICORN_NO_ATTR.search(log):
        return f"wrong module path: module {m.group(2)!r} has no attribute {m.group(1)!r} (the FastAPI app)"
    if m := _UVICORN_BAD_FORMAT.search(log):
        return f"wrong module path: {m.group(1)!r} is not in the form module:attribute"

    syntax = list(_SYNTAX.finditer(log))
    if syntax:
        last = syntax[-1]
        where = list(_FILE_LINE.finditer(log, 0, last.start()))
        place = f" ({_shown_path(where[-1].group(1), app_dir)}, line {where[-1].group(2)})" if where else ""
        return f"syntax error: {last.group(2).strip()}{place}"

    if "duplicate base class TimeoutError" in log and "aioredis" in log:
        return ("aioredis 2.x cannot be imported on Python 3.11 or later (TypeError: duplicate base class "
                "TimeoutError): use redis.asyncio (redis>=4.2), which replaced it")

    missing = list(_NO_MODULE.finditer(log))
    if missing:
        return _missing_module(missing[-1].group(1), module, app_dir)

    if m := _CANNOT_IMPORT.search(log):
        return f"import error: {m.group(1).strip()}"

    if "Waiting for application startup." in log and "Application startup complete." not in log:
        if m := _REDIS_DOWN.search(log):
            return f"cannot reach Redis at {m.group(1)} during startup: read its address from REDIS_URL"
        exceptions = _EXCEPTION.findall(log)
        if exceptions:
            return f"exception during startup: {exceptions[-1].strip()}"
        return "startup never finished: the app's startup/lifespan code did not return"

    if m := _REDIS_DOWN.search(log):
        return f"cannot reach Redis at {m.group(1)}: read its address from REDIS_URL"
    exceptions = _EXCEPTION.findall(log)
    if exceptions:
        return f"exception while loading the app: {exceptions[-1].strip()}"
    return None


def student_frame(log: str, root: Path) -> str | None:
    """'path:line: source' for the last traceback frame in the submission's own code (the path relative to
    `root`, the submission's copy): where the student fixes the error, before the frames of uvicorn and
    importlib that the raw log shows first. Pure: reads the log only. None when no frame is in `root`."""
    roots = {root.as_posix().rstrip("/") + "/", root.resolve().as_posix().rstrip("/") + "/"}
    lines = log.splitlines()
    found = None
    for index, line in enumerate(lines):
        frame = _FILE_LINE.match(line)
        if frame is None:
            continue
        inside = [r for r in roots if frame.group(1).startswith(r)]
        if inside:
            source = lines[index + 1].strip() if index + 1 < len(lines) else ""
            # A frame with no source line is followed by the next frame or the exception, not by code.
            if _FILE_LINE.match(source) or source.startswith("Traceback") or _EXCEPTION.match(source):
                source = ""
            found = f"{frame.group(1)[len(inside[0]):]}:{frame.group(2)}: {source}".rstrip()
    return found
