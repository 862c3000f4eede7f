"""What the pipeline needs from the place where the submission's code runs (its dependency install, the app,
its own commands), as one protocol. A runtime is chosen once per grading, like an httpx transport: a context
manager that starts what it needs on enter and always cleans up on exit.

While a runtime is entered it is the *current* one of this thread (and of the asyncio tasks started from it):
code deep in the checks' plumbing (ctx.run, the probe's clients) asks `current()` instead of having the runtime
threaded through every signature.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

if TYPE_CHECKING:
    from typing_extensions import Self

    from grader.app import AppLaunch, AppStart
    from grader.checking import RunCommand
    from grader.environment import Environment
    from grader.proxy import RedisProxy
    from grader.services import RedisServer

    Endpoint = RedisProxy | RedisServer


@dataclass(frozen=True)
class ClientAddressing:
    """How a virtual client with address `ip` reaches the app.

    TCP (uds=None): each client binds its own loopback source address, and the app sees it as the peer.
    Unix socket (a container without network): every client connects to the same socket and names its address
    in X-Forwarded-For, which uvicorn (started with --proxy-headers) turns into request.client.host.
    """

    uds: str | None = None

    def transport(self, ip: str, *, verify: object, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
        if self.uds is not None:
            return httpx.AsyncHTTPTransport(uds=self.uds, verify=verify, limits=limits)  # type: ignore[arg-type]
        return httpx.AsyncHTTPTransport(local_address=ip, verify=verify, limits=limits)  # type: ignore[arg-type]

    def headers(self, ip: str) -> dict[str, str]:
        return {"X-Forwarded-For": ip} if self.uds is not None else {}


TCP = ClientAddressing()


class AppHandle(Protocol):
    """The app under uvicorn, wherever it runs. A context manager: stopped (and removed) on exit."""

    def start(self) -> AppStart: ...

    def poll(self) -> int | None: ...

    def log_tail(self, lines: int = 40) -> str: ...

    def likely_cause(self) -> str | None: ...

    def stop(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Runtime(Protocol):
    name: str  # "local" | "docker": the result's environment["runtime"]
    addressing: ClientAddressing

    def prepare(self, root: Path, kind: str) -> Environment:
        """The submission's environment (its requirements and uvicorn installed); `kind` is --env."""
        ...

    def app(self, launch: AppLaunch, redis: Endpoint, *, start_timeout: float) -> AppHandle:
        """The app (not started yet), its REDIS_URL pointing at `redis`."""
        ...

    def redis_env(self, redis: Endpoint) -> dict[str, str]:
        """REDIS_URL/REDIS_HOST/REDIS_PORT as the submission's code must see them to reach `redis`."""
        ...

    def runner(self, redis: Endpoint, python: str, app_dir: Path, *, yields: bool = False) -> RunCommand:
        """ctx.run: a command in the submission's environment, its REDIS_URL pointing at `redis`. `yields`: its
        commands take the processor only when nothing else wants it (they run beside the timing checks)."""
        ...

    def describe(self) -> dict[str, str]:
        """What the result document's `environment` records of it: {"runtime": name, ...}."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def tcp_redis_env(redis: Endpoint) -> dict[str, str]:
    return {"REDIS_URL": redis.url, "REDIS_HOST": redis.host, "REDIS_PORT": str(redis.port)}


_CURRENT: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("redis_grader_runtime", default=None)


@contextlib.contextmanager
def activated(runtime: Runtime) -> Iterator[Runtime]:
    """Make `runtime` the current one inside the block."""
    token = _CURRENT.set(runtime)
    try:
        yield runtime
    finally:
        _CURRENT.reset(token)


def current() -> Runtime:
    """The runtime of the grading in progress; outside one (a test driving the pieces by hand), the local one."""
    runtime = _CURRENT.get()
    if runtime is None:
        from grader.runtime.local import LocalRuntime

        return LocalRuntime()
    return runtime
