"""Containers made ahead of time. Creating and starting one is the slow part of the docker runtime (the engine
sets up its file system and the relay's interpreter starts), and what it will run is known only later: so each
container starts confined and idle, its relay waiting for a job (grader/runtime/relay.py), and the grader hands
it the app or a command when the time comes. The containers for one grading are created together, beside the
Redis start, while the grader waits for nothing.

There are two kinds. The app's container sees the submission read-only. A command's container (the student's
tests, its seed script) gets a private, writable copy of it instead, on a scratch file system of its own, made by
its relay from the read-only submission: a suite that writes into its own folder (a cache, a sqlite file, a
coverage file) works as it does locally, and nothing it writes reaches the host or another container.

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
from grader.runtime.image_root import MountedRoot


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
    root_fs: MountedRoot | None = None  # the image's files mounted over a skeleton (image_root.py), or the image


class ContainerPool:
    def __init__(self, client: Any, recipe: Recipe, socket_base: Path) -> None:
        self._client = client
        self._recipe = recipe
        self._socket_base = socket_base
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="container-pool")
        self._spares: dict[bool, list[Future[Idle]]] = {False: [], True: []}
        self._made: list[Any] = []
        self._lock = threading.Lock()

    def prewarm(self, count: int, *, writable: bool) -> None:
        """Start creating `count` containers in the background: commands' (`writable`) or the app's."""
        with self._lock:
            self._spares[writable] += [self._workers.submit(self._make, writable) for _ in range(count)]

    def take(self, *, writable: bool) -> Idle:
        """An idle container: a spare (waiting for it if it is still being made), else a new one. `writable`: a
        command's, with its own writable copy of the submission; else the app's, with the submission read-only."""
        with self._lock:
            spares = self._spares[writable]
            future = spares.pop(0) if spares else None
        return future.result() if future is not None else self._make(writable)

    def close(self) -> None:
        """Remove every container made (waiting for those being made), in parallel: each removal is slow too."""
        for future in (*self._spares[False], *self._spares[True]):
            future.cancel()
        self._workers.shutdown(wait=True)
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="container-removal") as removal:
            list(removal.map(containers.remove, self._made))
        self._made.clear()

    def _make(self, writable: bool) -> Idle:
        import docker.errors

        sockets = self._socket_base / uuid.uuid4().hex[:12]
        sockets.mkdir()
        os.chmod(sockets, 0o777)  # the unprivileged user creates app.sock; the 0700 parent keeps others out
        try:
            container = self._create(sockets, writable)
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

    def _create(self, sockets: Path, writable: bool) -> Any:
        recipe = self._recipe
        root = str(recipe.root)
        # The relay is the first process (it reaps orphans): the engine's init would need a mount point in the
        # image's read-only /sbin when its files are mounted (image_root.py).
        options = {key: value for key, value in containers.confined(recipe.limits, init=False).items()
                   if key != "detach"}  # fmt: skip
        mounts = [
            containers.bind(recipe.env_dir, containers.ENV_DIR),
            containers.bind(containers.RELAY_SOURCE, containers.RELAY),
            containers.bind(sockets, containers.SOCKETS, read_only=False),
        ]
        if writable:
            mounts.append(containers.bind(recipe.root, containers.SUBMISSION))
            options["tmpfs"] = {**options["tmpfs"], root: containers.WORKSPACE_SCRATCH}
        else:
            mounts.append(containers.bind(recipe.root, root))
        image, image_env = recipe.image, {}
        if recipe.root_fs is not None:
            image, image_env = recipe.root_fs.skeleton, recipe.root_fs.env
            mounts = [*recipe.root_fs.mounts, *mounts]
        return self._client.containers.create(
            image,
            containers.idle_command(recipe.redis_port, copy_to=root if writable else None),
            working_dir="/",
            environment={**image_env, **containers.environment({})},
            mounts=mounts,
            **options,
        )


def engine_words(exc: Exception) -> str:
    """The Docker engine's own words, in one line."""
    lines = str(getattr(exc, "explanation", None) or exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__
