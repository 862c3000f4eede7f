"""Where the submission's code runs: its dependency install, the app, its own commands (tests, seed script).

`open_runtime(kind)` gives a Runtime (grader/runtime/base.py): "local" runs them as the grader's user in the
sandbox of grader/sandbox.py; "docker" runs them in containers without network, as an unprivileged user.
"""

from __future__ import annotations

import logging

from grader.errors import UsageError
from grader.runtime.base import TCP, AppHandle, ClientAddressing, Runtime, activated, current, tcp_redis_env

log = logging.getLogger(__name__)

KINDS = ("local", "docker")
DEFAULT_APP_IMAGE = "python:3.12-slim"

__all__ = [
    "DEFAULT_APP_IMAGE", "KINDS", "TCP", "AppHandle", "ClientAddressing", "Runtime", "activated", "current",
    "default_batch_runtime", "open_runtime", "tcp_redis_env",
]  # fmt: skip


def open_runtime(kind: str = "local", app_image: str = DEFAULT_APP_IMAGE) -> Runtime:
    """The runtime named `kind` (not entered yet: use it as a context manager)."""
    if kind == "local":
        from grader.runtime.local import LocalRuntime

        return LocalRuntime()
    if kind == "docker":
        from grader.runtime.docker import DockerRuntime

        return DockerRuntime(app_image)
    raise UsageError(f"unknown runtime {kind!r}: use one of {', '.join(KINDS)}")


def default_batch_runtime() -> str:
    """A batch grades strangers' code: in containers when an engine answers, else locally, saying so loudly."""
    from grader.services import docker_available

    if docker_available():
        return "docker"
    log.warning(
        "NO DOCKER ENGINE ANSWERS: the submissions' code runs on this machine as your user (--runtime local), "
        "contained only by process limits; start a Docker engine to grade them in containers"
    )
    return "local"
