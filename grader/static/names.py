"""What the redis names mean: which qualified names build an async client, a sync one, or a pool."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from grader.static.facts import Finding

_ASYNC_MODULES = (
    "redis.asyncio",
    "redis.asyncio.client",
    "redis.asyncio.cluster",
    "redis.asyncio.utils",
    "redis.asyncio.sentinel",
    "redis.asyncio.connection",
    "aioredis",
    "aioredis.client",
    "aioredis.connection",
    "aioredis.utils",
)
_SYNC_MODULES = ("redis", "redis.client", "redis.cluster", "redis.utils", "redis.sentinel", "redis.connection")
_CLIENT_CLASSES = ("Redis", "StrictRedis", "RedisCluster")
_CLIENTS = frozenset(
    {*_CLIENT_CLASSES, "from_url", *(f"{c}.{m}" for c in _CLIENT_CLASSES for m in ("from_url", "from_pool"))}
)
_POOL_CLASSES = ("ConnectionPool", "BlockingConnectionPool")
_POOLS = frozenset({*_POOL_CLASSES, *(f"{p}.from_url" for p in _POOL_CLASSES)})
_AIOREDIS_V1 = frozenset({"create_redis", "create_redis_pool", "create_pool", "create_connection"})


class Kind(Enum):
    ASYNC_CLIENT = "async client"
    SYNC_CLIENT = "sync client"
    ASYNC_SENTINEL = "async sentinel"
    POOL = "pool"
    AIOREDIS_V1 = "aioredis 1.x"


def kind_of(qualified: str) -> Kind | None:
    for mod in _ASYNC_MODULES:  # before the sync ones: "redis.asyncio.Redis" also starts with "redis."
        if qualified.startswith(mod + "."):
            rest = qualified[len(mod) + 1 :]
            if rest in _CLIENTS:
                return Kind.ASYNC_CLIENT
            if rest in _POOLS:
                return Kind.POOL
            if rest == "Sentinel":
                return Kind.ASYNC_SENTINEL
            if mod == "aioredis" and rest in _AIOREDIS_V1:
                return Kind.AIOREDIS_V1
    for mod in _SYNC_MODULES:
        if qualified.startswith(mod + "."):
            rest = qualified[len(mod) + 1 :]
            if rest in _CLIENTS or rest == "Sentinel":
                return Kind.SYNC_CLIENT
            if rest in _POOLS:
                return Kind.POOL
    return None


def is_redis_name(qualified: str) -> bool:
    return qualified.split(".")[0] in ("redis", "aioredis")


class Decode(Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"  # benefit of the doubt: counted as YES
    ABSENT = "absent"  # a mapping that does not mention decode_responses


def combine(values: Iterable[Decode]) -> Decode:
    seen = set(values)
    if not seen:
        return Decode.UNKNOWN
    if seen <= {Decode.NO, Decode.ABSENT}:
        return Decode.NO if Decode.NO in seen else Decode.ABSENT
    if seen == {Decode.YES}:
        return Decode.YES
    return Decode.UNKNOWN  # mixed branches or a value we cannot see


@dataclass
class Pool:
    decode: Decode
    finding: Finding
