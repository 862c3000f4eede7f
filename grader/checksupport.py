"""Small helpers the checks share (check authors import them from grader.api): reading Redis the way a
student's code may have written it, and turning requests and commands into evidence a student can read."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio

from grader.probe import Reply, VirtualClient
from grader.proxy import Command

# Command families, matched case-insensitively on the name the proxy recorded (redis-py 8 sends incr() as INCRBY).
WRITES = {"SET", "SETEX", "PSETEX", "SETNX", "MSET", "GETSET", "GETEX", "HSET", "HMSET", "HSETNX", "LPUSH", "RPUSH",
          "ZADD", "ZINCRBY", "SADD", "INCR", "INCRBY", "INCRBYFLOAT", "DECR", "DECRBY", "APPEND", "JSON.SET",
          "RESTORE", "COPY", "RENAME"}
SCRIPTS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}
EXPIRES = {"EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"}
MAX_EVIDENCE = 25


def commands_text(commands: Iterable[Command], limit: int = MAX_EVIDENCE) -> list[str]:
    lines = [str(c) + (f"  -> {c.reply}" if c.reply else "") for c in commands]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


def requests_text(replies: Iterable[Reply], limit: int = MAX_EVIDENCE) -> list[str]:
    lines = [str(r) for r in replies]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


def keys_of(command: Command) -> list[str]:
    """The keys a command names: the first argument, or the declared keys of a script call."""
    if command.name in SCRIPTS:
        if len(command.args) >= 2 and command.args[1].isdigit():
            return list(command.args[2 : 2 + int(command.args[1])])
        return []
    if command.name == "MSET":
        return list(command.args[::2])
    return [command.args[0]] if command.args else []


def writes_to(commands: Iterable[Command], key: str) -> list[Command]:
    """Commands that (may) write `key`: plain writes of it, and scripts that declare it."""
    return [c for c in commands if (c.name in WRITES or c.name in SCRIPTS) and key in keys_of(c)]


async def all_keys(r: redis.asyncio.Redis) -> list[str]:
    return sorted([key async for key in r.scan_iter(count=1000)])


async def value_text(r: redis.asyncio.Redis, key: str) -> str:
    """A key's content as text whatever its type, for looking for known strings in it."""
    kind = await r.type(key)
    if kind == "string":
        raw = await r.execute_command("GET", key, NEVER_DECODE=True)
        return (raw or b"").decode("utf-8", errors="replace")
    if kind == "hash":
        return " ".join(f"{k} {v}" for k, v in (await r.hgetall(key)).items())
    if kind == "list":
        return " ".join(await r.lrange(key, 0, -1))
    if kind == "set":
        return " ".join(await r.smembers(key))
    if kind == "zset":
        return " ".join(m for m, _ in await r.zrange(key, 0, -1, withscores=True))
    return ""


def strings_in(value: Any) -> list[str]:
    """Every string found in a JSON value, in order (names of products, users...)."""
    found: list[str] = []
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(strings_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(strings_in(item))
    return found


async def burst(client: VirtualClient, path: str, count: int) -> list[Reply]:
    """`count` requests one after another from one client."""
    return [await client.get(path) for _ in range(count)]


def crossed_minute(started: float) -> bool:
    """Some limiters key their window on the clock minute (…:{now//60}): a burst that straddles a minute
    boundary resets mid-burst. Such a burst proves nothing and is repeated from a fresh address."""
    return int(started // 60) != int(time.time() // 60)


def first_status(replies: Sequence[Reply], status: int) -> int | None:
    """1-based position of the first reply with `status`, or None."""
    return next((i for i, r in enumerate(replies, 1) if r.status == status), None)
