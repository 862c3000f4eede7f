"""The docker runtime: everything the submission controls runs in containers the grader starts and removes.

The dependency install runs in a container of its own (grader/runtime/container_env.py); the app and every
ctx.run command run confined (grader/runtime/containers.py: no network, an unprivileged user, limits), each in a
container of its own, with the submission's copy, its venv and the relay script mounted read-only at the same
paths as on the host (so paths in argv, cwd and tracebacks mean the same on both sides); a command gets a
private writable copy of the submission at that path instead (grader/runtime/pool.py). On an engine that copies
the image for every container, the image's files are mounted instead (grader/runtime/image_root.py). The grader reaches the app over a Unix socket
(uvicorn --uds, the virtual clients' addresses in X-Forwarded-For); the app reaches Redis through the relay
inside the container and a Unix socket forwarded to the RESP proxy on the host (grader/runtime/forward.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import signal
import socket
import stat
import sys
import time
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader import procfs
from grader.app import (
    QUIET_PERIOD_S,
    AppLaunch,
    AppStart,
    QuietWatch,
    diagnose_startup_log,
    root_status,
    start_failure,
    wait_until_answering,
)
from grader.environment import Environment
from grader.errors import GraderError
from grader.runtime import containers
from grader.runtime.base import TCP, ClientAddressing
from grader.runtime.container_env import prepare_container_env
from grader.runtime.forward import Forwarders
from grader.runtime.image_root import MountedRoot, copies_images, mounted_root
from grader.runtime.local import LocalRuntime
from grader.runtime.pool import ContainerPool, Idle, Recipe, engine_words
from grader.sandbox import DEFAULT_LOG_CAP, CompletedRun
from grader.services import remove_orphaned_containers
from grader.tempdirs import make_owned_tempdir, remove_tree
from grader.text import log_tail

if TYPE_CHECKING:
    from typing_extensions import Self

    from grader.checking import RunCommand
    from grader.runtime.base import Endpoint

APP_SOCKET = f"{containers.SOCKETS}/app.sock"
PREWARMED_COMMANDS = 3  # ctx.run containers made ahead: the submission's tests, their coverage, its seed script
BASE_URL = "http://app"  # the host part is never resolved: every request goes over the Unix socket


def pinned_socket(path: Path) -> int:
    """An O_PATH descriptor of the Unix socket at `path`, to connect to as /proc/self/fd/<it>: the socket itself,
    never what a symbolic link there points to. The app's container can write its socket folder, so it can swap
    app.sock for a link to any socket of this machine (the container engine's, say); the grader runs as whoever
    runs it, often root. Raises OSError when `path` is missing or not a socket."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)  # on a link: the link itself
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ENOTSOCK, "not a socket the app made", str(path))
    return fd


class DockerRuntime:
    name = "docker"

    def __init__(self, image: str, limits: containers.Limits | None = None, *, mount_root: bool | None = None) -> None:
        """`mount_root`: make the containers of the image's unpacked files (image_root.py); None: when the engine
        copies the image into each container."""
        self.image = image
        self.limits = limits or containers.Limits()
        self.mount_root = mount_root
        self.addressing: ClientAddressing = TCP  # the app's socket, once there is an app
        self.redis_port = random.randrange(*containers.REDIS_PORTS)
        self._client: Any = None
        self._image_id = ""
        self._dir: Path | None = None
        self._pool: ContainerPool | None = None
        self._forwarders = Forwarders()

    # -- lifecycle

    def __enter__(self) -> Self:
        try:
            self._open()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open(self) -> None:
        try:
            import docker

            self._client = docker.from_env(timeout=120)
            self._client.ping()
        except Exception as exc:
            raise GraderError(f"--runtime docker needs a Docker engine, and none answers ({exc})") from exc
        remove_orphaned_containers()
        self._image_id = self._resolve_image()
        self._dir = make_owned_tempdir("redis-grader-sockets-")  # 0700: only the grader reaches them
        self._forwarders.start()

    def _resolve_image(self) -> str:
        import docker.errors

        try:
            return str(self._client.images.get(self.image).id)
        except docker.errors.ImageNotFound:
            pass
        try:
            return str(self._client.images.pull(self.image).id)
        except Exception as exc:  # the engine's own words, in one line
            raise GraderError(f"the app image {self.image!r} is not here and cannot be pulled: {engine_words(exc)}") from exc

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.close()
        self._forwarders.stop()
        if self._dir is not None:
            remove_tree(self._dir)
        if self._client is not None:
            self._client.close()

    def describe(self) -> dict[str, str]:
        return {"runtime": self.name, "app_image": self.image}

    # -- the protocol

    def prepare(self, root: Path, kind: str) -> Environment:
        """The venv in the app image (`kind`, --env, does not apply: the harness's interpreter is not in it).
        Then the app's container starts being made (those of the commands once the app answers: app_ready)."""
        assert self._dir is not None
        environment, env_dir = prepare_container_env(self._client, self.image, self._image_id, Path(root))
        recipe = Recipe(self.image, self.limits, Path(root), env_dir, self.redis_port, self._root_fs())
        self._pool = ContainerPool(self._client, recipe, self._dir)
        self._pool.prewarm(1, writable=False)
        return environment

    def app_ready(self) -> None:
        """The app answers: make the containers of the commands the checks usually run. Not before, so that
        their making does not slow the app's start (a busy machine could push it past its start timeout)."""
        if self._pool is not None:
            self._pool.prewarm(PREWARMED_COMMANDS, writable=True)

    def _root_fs(self) -> MountedRoot | None:
        mount = copies_images(self._client) if self.mount_root is None else self.mount_root
        return mounted_root(self._client, self.image, self._image_id) if mount else None

    def app(self, launch: AppLaunch, redis: Endpoint, *, start_timeout: float) -> DockerApp:
        return DockerApp(self, launch, redis, start_timeout)

    def redis_env(self, redis: Endpoint) -> dict[str, str]:
        port = self.redis_port  # the relay's, inside every container; it leads to `redis`
        return {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port)}

    def runner(self, redis: Endpoint, python: str, app_dir: Path, *, yields: bool = False) -> RunCommand:
        local = LocalRuntime().runner(redis, python, app_dir, yields=yields)

        async def run(
            argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
        ) -> CompletedRun:
            if argv and Path(argv[0]).parent == Path(sys.executable).parent:
                # The harness's own tools (its ruff reading the code, installed beside its interpreter): not the
                # submission's code, and not in the image.
                return await local(argv, timeout=timeout, env=env, cwd=cwd)
            idle = await asyncio.to_thread(self.take, writable=True)
            if yields:
                await asyncio.to_thread(containers.yield_processor, idle.container)
            self.give(idle, [str(arg) for arg in argv], str(cwd or app_dir), {**self.redis_env(redis), **(env or {})},
                      redis)  # fmt: skip
            return await _completed(idle.container, timeout)

        return run

    # -- containers

    def take(self, *, writable: bool = False) -> Idle:
        """A confined container, started, idle until give(); removed on exit at the latest. `writable`: with a
        private writable copy of the submission (a command's), else with the submission read-only (the app's)."""
        if self._pool is None:
            raise RuntimeError("DockerRuntime.prepare() first")
        return self._pool.take(writable=writable)

    def give(self, idle: Idle, argv: list[str], cwd: str, env: dict[str, str], redis: Endpoint) -> None:
        """Start `argv` in an idle container, its Redis relayed to `redis`."""
        self._forwarders.add(idle.sockets / "redis.sock", redis.host, redis.port)
        containers.write_job(idle.sockets, argv, cwd, env)


async def _completed(container: Any, timeout: float) -> CompletedRun:
    """Wait for a one-off container (up to `timeout`), read its output, remove it. Cancelled: removed at once."""
    try:
        code = await asyncio.to_thread(_wait, container, timeout)
        output, cut = await asyncio.to_thread(containers.logs, container, DEFAULT_LOG_CAP)
    except asyncio.CancelledError:
        containers.remove(container)
        raise
    await asyncio.to_thread(containers.remove, container)
    return CompletedRun(returncode=code, timed_out=code is None, output=output, truncated=cut)


def _wait(container: Any, timeout: float) -> int | None:
    try:
        return int(container.wait(timeout=max(1, timeout))["StatusCode"])
    except Exception:  # noqa: BLE001 - requests' ReadTimeout: still running
        with contextlib.suppress(Exception):
            container.kill()
        return None


def _exit_text(code: int, oom: bool) -> str:
    if oom:
        return "was killed: out of memory"
    if code > 128:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(code - 128).name}"
    return f"exited with code {code}"


class DockerApp:
    """The app under uvicorn in a container. A context manager: removed on exit (start() is called explicitly)."""

    def __init__(
        self, runtime: DockerRuntime, launch: AppLaunch, redis: Endpoint, start_timeout: float,
        ready_ip: str = "127.0.0.2", quiet_s: float = QUIET_PERIOD_S,
    ) -> None:  # fmt: skip
        self.runtime = runtime
        self.launch = launch
        self.redis = redis
        self.start_timeout = start_timeout
        self.ready_ip = ready_ip  # the readiness polls' X-Forwarded-For: an address no virtual client gets
        self.quiet_s = quiet_s  # no progress for this long before answering: hung (grader/app.py QUIET_PERIOD_S)
        self._container: Any = None
        self._socket: Path | None = None
        self._pinned: int | None = None  # an O_PATH descriptor of the socket the app made (pinned_socket)
        self._exit: int | None = None
        self._oom = False
        self._final_log: str | None = None

    def start(self) -> AppStart:
        if self._container is not None:
            raise RuntimeError("DockerApp.start() called twice")
        idle = self.runtime.take()
        self._container = idle.container
        self._socket = idle.sockets / "app.sock"
        uvicorn = [
            containers.PYTHON, "-m", "uvicorn", self.launch.target, "--uds", APP_SOCKET,
            "--proxy-headers", "--forwarded-allow-ips", "*", "--no-access-log", "--lifespan", "auto",
        ]  # fmt: skip
        env = {**self.runtime.redis_env(self.redis), **self.launch.env}
        self.runtime.give(idle, uvicorn, str(self.launch.app_dir), env, self.redis)
        started = time.monotonic()  # the app's startup, not the container engine's
        state = wait_until_answering(
            lambda: self.poll() is not None,
            lambda timeout: root_status(self._connect, timeout, forwarded_for=self.ready_ip),
            started + self.start_timeout,
            QuietWatch(self._activity, self.quiet_s),
        )
        elapsed = time.monotonic() - started
        if state == "ready":
            assert self._pinned is not None
            # Every later connection goes to the very socket that answered, whatever the name comes to mean.
            self.runtime.addressing = ClientAddressing(uds=f"/proc/self/fd/{self._pinned}")
            self.runtime.app_ready()
            return AppStart(True, BASE_URL, 0, None, elapsed)
        code = self.poll()
        self.stop()
        ended = _exit_text(code, self._oom) if code is not None else None
        failure = start_failure(state, ended, self.start_timeout, self.quiet_s, self._output())
        return AppStart(False, BASE_URL, 0, failure, elapsed)

    def _activity(self) -> Hashable | None:
        """The container's fingerprint for QuietWatch: the processor time of everything in it (the app and every
        process it started, the relay beside them, which waits without using any), read from its cgroup, and its
        log. None when its cgroup cannot be read here (an engine in a VM or on another machine): then a startup
        that hangs is waited out to the start timeout."""
        pid = int(self._container.attrs.get("State", {}).get("Pid") or 0)  # poll() keeps attrs fresh
        cpu = procfs.cgroup_cpu_ns(pid, self._container.id) if pid > 0 else None
        if cpu is None:
            return None
        return cpu, self._output()

    @property
    def container(self) -> Any:
        """The docker SDK's Container of the app (None before start())."""
        return self._container

    def _connect(self, timeout: float) -> socket.socket:
        assert self._socket is not None
        pinned = pinned_socket(self._socket)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(f"/proc/self/fd/{pinned}")
        except OSError:
            sock.close()
            os.close(pinned)
            raise
        self._unpin()
        self._pinned = pinned
        return sock

    def _unpin(self) -> None:
        if self._pinned is not None:
            os.close(self._pinned)
            self._pinned = None

    def poll(self) -> int | None:
        if self._exit is not None or self._container is None:
            return self._exit
        try:
            self._container.reload()
        except Exception:  # noqa: BLE001 - removed: it is not running
            return self._exit if self._final_log is not None else -signal.SIGKILL
        state = self._container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            self._exit = int(state.get("ExitCode", -1))
            self._oom = bool(state.get("OOMKilled"))
        return self._exit

    def _output(self) -> str:
        if self._final_log is not None:
            return self._final_log
        if self._container is None:
            return ""
        return containers.logs(self._container, DEFAULT_LOG_CAP)[0]

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self._output(), lines)

    def likely_cause(self) -> str | None:
        if self._container is None:
            return None
        if self._oom:
            return f"the app used more than {self.runtime.limits.memory} of memory"
        return diagnose_startup_log(self._output(), self.launch.target, self.launch.app_dir)

    def stop(self) -> None:
        if self._container is not None and self._final_log is None:
            self.poll()
            self._final_log = self._output()
            containers.remove(self._container)
        self._unpin()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
