"""What every Redis backend shares: the server it yields, the shape of a backend, and the settings that make a
server fit for grading (nothing on disk, a script that runs too long answered BUSY soon)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis

# After this many milliseconds a running script makes Redis answer BUSY to every other client, and becomes
# killable with SCRIPT KILL / FUNCTION KILL (grader/services/guard.py). Redis 7 calls it busy-reply-threshold
# and keeps lua-time-limit as its alias; 6.2 knows only lua-time-limit.
BUSY_AFTER_MS = 1000


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    backend: str  # "docker" | "local"
    version: str  # INFO server -> redis_version, e.g. "7.0.15"
    source: str  # image name, or path of the local binary
    note: str | None = None  # why this backend was used when another was tried first
    # Replaces the server with a fresh, empty one at the same host:port (blocking); None when it cannot.
    replace: Callable[[], None] | None = field(default=None, repr=False, compare=False)

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


class RedisBackend(Protocol):
    """One way to run a Redis: entering starts it and returns the server, exiting always stops it and removes
    what it left (process, container, temp dir), whatever happened inside."""

    def __enter__(self) -> RedisServer: ...

    def __exit__(self, *exc_info: object) -> None: ...


def as_ip(host: str) -> str:
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


def server_version(client: redis.Redis) -> str:
    return str(client.info("server").get("redis_version", "unknown"))


def prepare_for_grading(client: redis.Redis) -> None:
    """No snapshots or AOF (a background save mid-check would add latency to timing checks), and a script that
    runs too long answered BUSY soon, so the grader can kill it instead of waiting on it."""
    with contextlib.suppress(redis.RedisError):
        client.config_set("save", "")
        client.config_set("appendonly", "no")
        client.config_set("lua-time-limit", str(BUSY_AFTER_MS))


def one_line(text: object) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(text).__name__
