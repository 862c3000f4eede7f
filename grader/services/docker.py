"""A Redis in a container, through testcontainers; and the sweep of containers a killed grader left behind."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import redis

from grader import procfs
from grader.errors import GraderError
from grader.services.base import RedisServer, as_ip, one_line, prepare_for_grading, server_version

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "redis:7-alpine"
# A grader killed with SIGKILL cannot remove its container, and without the Ryuk reaper nothing else does: every
# container is labelled with the process that owns it, and the next grader on this machine removes the
# containers whose owner is gone (so does a batch, after each child it had to kill).
OWNER_LABEL = "redis-grader.owner"


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


def image_present(image: str, timeout: float = 5.0) -> bool:
    """True when `image` is already in the local engine (`docker image inspect`): never pulls, never raises."""
    try:
        import docker

        client = docker.from_env(timeout=max(1, int(timeout)))
        try:
            client.images.get(image)
            return True
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - not there, an invalid name, or no engine: all mean "not usable here"
        return False


def remove_orphaned_containers() -> list[str]:
    """Remove the Redis containers whose grader is gone; the ids removed. Never raises: a sweep that cannot
    reach the engine leaves things as they are."""
    removed = []
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
                if procfs.identity_gone(container.labels.get(OWNER_LABEL, "")):
                    container.remove(force=True, v=True)
                    removed.append(container.id)
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - no engine, or a container removed meanwhile
        log.debug("orphaned container sweep: %s", exc)
    if removed:
        log.info("removed %d container(s) left by a grader that was killed", len(removed))
    return removed


def _redis_container_class() -> Any:
    # The Ryuk reaper image lives on Docker Hub, which may be unreachable; we remove our container
    # ourselves on exit, so the reaper is not needed. An explicit user setting is respected.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.config import testcontainers_config

    if os.environ["TESTCONTAINERS_RYUK_DISABLED"].lower() in ("1", "true", "yes", "on"):
        testcontainers_config.ryuk_disabled = True  # the config may have read the variable before we set it
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # older testcontainers layouts
        from testcontainers.redis import RedisContainer  # type: ignore[no-redef]
    return RedisContainer


class DockerRedis:
    """A Redis container from `image` on a loopback-mapped port; the RedisBackend for "docker"."""

    def __init__(self, image: str = DEFAULT_IMAGE, timeout: float = 30.0) -> None:
        self.image = image
        self.timeout = timeout
        self._container: Any = None
        self._port: int | None = None

    def __enter__(self) -> RedisServer:
        remove_orphaned_containers()
        try:
            host, port, version = self._start(host_port=None)
        except BaseException:
            self.__exit__()
            raise
        self._port = port
        return RedisServer(host=host, port=port, backend="docker", version=version, source=self.image,
                           replace=self.replace)

    def replace(self) -> None:
        """Remove the container (whatever state its server is in) and start a new one published on the same host
        port, so every client and proxy configured with its address goes on working."""
        if self._port is None:
            raise GraderError("the Redis container is not running")
        self.__exit__()
        self._start(host_port=self._port)

    def _start(self, host_port: int | None) -> tuple[str, int, str]:
        """Start a container (on `host_port`, or one Docker picks); (host, port, version) once Redis answers."""
        container = _redis_container_class()(self.image).with_kwargs(
            labels={OWNER_LABEL: procfs.identity(os.getpid()) or "unknown"}
        )
        if host_port is not None:
            container = container.with_bind_ports(container.port, host_port)
        container._wait_strategy.with_startup_timeout(self.timeout)  # default would be 120 s
        self._container = container
        try:
            container.start()
            host = as_ip(container.get_container_host_ip())
            port = int(container.get_exposed_port(container.port))
            client = redis.Redis(host=host, port=port, socket_timeout=5)
            try:
                version = server_version(client)
                prepare_for_grading(client)
            finally:
                client.close()
        except (KeyboardInterrupt, GraderError):
            raise
        except Exception as exc:  # docker/testcontainers raise many types; the user needs one line
            # docker's APIError carries the engine's own words in `explanation` (e.g. the failed pull).
            reason = one_line(getattr(exc, "explanation", None) or exc)
            raise GraderError(
                f"could not start Redis image {self.image!r}: {reason}; build one or use --redis local"
            ) from exc
        return host, port, version

    def __exit__(self, *exc_info: object) -> None:
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.stop()
