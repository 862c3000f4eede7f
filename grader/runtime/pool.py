"""Containers made ahead of time. Creating one is the slow part of the docker runtime (the engine copies the
image's file system for it: seconds, many on a busy machine with the vfs storage driver), and what it will run is
known only later: so each container starts confined and idle, its relay waiting for a job
(grader/runtime/relay.py), and the grader hands it the app or a command when the time comes. The containers for
one grading are created together, beside the Redis start, while the grader waits for nothing.

Each container runs one job and is never reused; every container is removed on close(), together.
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import GraderError
from grader.runtime import containers


@dataclass(frozen=True)
class Idle:
    container: Any  # the docker SDK's Container, started, its relay waiting for a job
    sockets: Path  # its socket directory on the host (mounted at containers.SOCKETS)


@dataclass(frozen=True)
class Recipe:
    """What every container of one grading has: the image, its limits and the read-only mounts."""

    image: str
    limits: containers.Limits
    root: Path  # the submission's copy: mounted at the same path
    env_dir: Path  # its venv: mounted at containers.ENV_DIR
    redis_port: int  # where the relay listens inside


class ContainerPool:
    def __init__(self, client: Any, recipe: Recipe, socket_base: Path) -> None:
        self._client = client
        self._recipe = recipe
        self._socket_base = socket_base
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="container-pool")
        self._spares: list[Future[Idle]] = []
        self._made: list[Any] = []
        self._lock = threading.Lock()

    def prewarm(self, count: int) -> None:
        """Start creating `count` containers in the background."""
        self._spares += [self._workers.submit(self._make) for _ in range(count)]

    def take(self) -> Idle:
        """An idle container: a spare (waiting for it if it is still being made), else a new one."""
        with self._lock:
            future = self._spares.pop(0) if self._spares else None
        return future.result() if future is not None else self._make()

    def close(self) -> None:
        """Remove every container made (waiting for those being made), in parallel: each removal is slow too."""
        for future in self._spares:
            future.cancel()
        self._workers.shutdown(wait=True)
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="container-removal") as removal:
            list(removal.map(containers.remove, self._made))
        self._made.clear()

    def _make(self) -> Idle:
        import docker.errors

        sockets = self._socket_base / uuid.uuid4().hex[:12]
        sockets.mkdir()
        os.chmod(sockets, 0o777)  # the unprivileged user creates app.sock; the 0700 parent keeps others out
        try:
            container = self._create(sockets)
        except docker.errors.APIError as exc:
            raise GraderError(f"cannot create a container of {self._recipe.image!r}: {engine_words(exc)}") from exc
        with self._lock:
            self._made.append(container)
        try:
            container.start()
        except docker.errors.APIError as exc:  # e.g. an image whose files its unprivileged user cannot read
            raise GraderError(
                f"cannot start a container of {self._recipe.image!r} as user {containers.USER}: {engine_words(exc)}"
            ) from exc
        return Idle(container, sockets)

    def _create(self, sockets: Path) -> Any:
        recipe = self._recipe
        return self._client.containers.create(
            recipe.image,
            containers.idle_command(recipe.redis_port),
            working_dir="/",
            environment=containers.environment({}),
            mounts=[
                containers.bind(recipe.root, str(recipe.root)),
                containers.bind(recipe.env_dir, containers.ENV_DIR),
                containers.bind(containers.RELAY_SOURCE, containers.RELAY),
                containers.bind(sockets, containers.SOCKETS, read_only=False),
            ],
            **{key: value for key, value in containers.confined(recipe.limits).items() if key != "detach"},
        )


def engine_words(exc: Exception) -> str:
    """The Docker engine's own words, in one line."""
    lines = str(getattr(exc, "explanation", None) or exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__
