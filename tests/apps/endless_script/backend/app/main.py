"""VueExpert shop API: a Redis cache for /products, a per-IP rate limiter and a leaderboard."""

import asyncio
import json
import logging
import os
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as redis
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app import database

REDIS_URL = os.getenv("REDIS_URL", "redis://localhost:6379/0")

PRODUCTS_KEY = "products:all"
PRODUCTS_LOCK_KEY = "lock:products:all"
CACHE_TTL_S = 60
LOCK_TTL_MS = 5000  # longer than any DB read, so a crashed loader cannot block the key for long
LOCK_POLL_S = 0.02
LOCK_POLLS = 100  # wait up to ~2 s for the lock holder, then read the DB ourselves

RATE_LIMIT = 10  # requests per window per client IP
RATE_WINDOW_S = 60

LEADERBOARD_KEY = "leaderboard"

# INCR and EXPIRE run inside one script: Redis executes it atomically, so two requests cannot
# interleave and a crash between the two commands can never leave a counter without a TTL.
RATE_LIMIT_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""

logger = logging.getLogger("app")


@asynccontextmanager
async def lifespan(app: FastAPI):
    # One client (one connection pool) for the whole app. Short timeouts and no retries
    # turn a dead Redis into a quick error instead of a hanging request.
    client = redis.from_url(
        REDIS_URL,
        decode_responses=True,
        socket_connect_timeout=1,
        socket_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    app.state.redis = client
    app.state.rate_limit = client.register_script(RATE_LIMIT_LUA)
    yield
    await client.aclose()


app = FastAPI(title="VueExpert shop", lifespan=lifespan)


def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


RedisDep = Annotated[redis.Redis, Depends(get_redis)]


class ProductIn(BaseModel):
    name: str
    price: float


class ScoreIn(BaseModel):
    user: str
    score: float


@app.middleware("http")
async def rate_limiter(request: Request, call_next):
    ip = request.client.host if request.client else "unknown"
    key = f"rate:ip:{ip}"
    try:
        count = await request.app.state.rate_limit(keys=[key], args=[RATE_WINDOW_S])
    except RedisError:
        # Fail open: with Redis down it is better to serve than to block every client.
        logger.warning("rate limiter: Redis unavailable, request let through")
        count = 0
    if count > RATE_LIMIT:
        # Return the response: an HTTPException raised in a middleware becomes a 500.
        return JSONResponse(status_code=429, content={"detail": "Too Many Requests"})
    return await call_next(request)


async def cached_products(r: redis.Redis) -> list[dict]:
    cached = await r.get(PRODUCTS_KEY)
    if cached is not None:
        return json.loads(cached)
    # Cache miss. Only the request that takes the lock reads the DB (no stampede);
    # the others wait for it to fill the cache.
    if await r.set(PRODUCTS_LOCK_KEY, "1", nx=True, px=LOCK_TTL_MS):
        try:
            products = await database.fetch_products()
            await r.set(PRODUCTS_KEY, json.dumps(products), ex=CACHE_TTL_S)
            return products
        finally:
            await r.delete(PRODUCTS_LOCK_KEY)
    for _ in range(LOCK_POLLS):
        await asyncio.sleep(LOCK_POLL_S)
        cached = await r.get(PRODUCTS_KEY)
        if cached is not None:
            return json.loads(cached)
    return await database.fetch_products()


@app.get("/products")
async def list_products(r: RedisDep) -> list[dict]:
    try:
        return await cached_products(r)
    except RedisError:
        logger.warning("products: Redis unavailable, reading the database directly")
        return await database.fetch_products()


@app.post("/products", status_code=201)
async def create_product(product: ProductIn, r: RedisDep) -> dict:
    created = await database.create_product(product.name, product.price)
    await r.delete(PRODUCTS_KEY)  # invalidate: the next GET reloads the fresh list
    return created


@app.put("/products/{product_id}")
async def update_product(product_id: int, product: ProductIn, r: RedisDep) -> dict:
    updated = await database.update_product(product_id, product.name, product.price)
    if updated is None:
        raise HTTPException(status_code=404, detail="Product not found")
    await r.delete(PRODUCTS_KEY)  # invalidate: the next GET reloads the fresh list
    return updated


@app.get("/health")
async def health(r: RedisDep):
    # Careless: a script that wrote, then never ends. Redis cannot kill it; only replacing the server helps.
    try:
        await r.eval("redis.call('SET', 'health', 'checked') while true do end", 0)
    except RedisError:
        return JSONResponse(status_code=503, content={"status": "degraded", "redis": "down"})
    return {"status": "ok", "redis": "up"}


@app.post("/score")
async def post_score(entry: ScoreIn, r: RedisDep) -> dict:
    await r.zadd(LEADERBOARD_KEY, {entry.user: entry.score})
    return {"user": entry.user, "score": entry.score}


@app.get("/top")
async def top_players(r: RedisDep) -> list[dict]:
    rows = await r.zrevrange(LEADERBOARD_KEY, 0, 2, withscores=True)
    return [{"user": user, "score": score} for user, score in rows]
