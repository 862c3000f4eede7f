"""Fill the leaderboard with test players: `python -m app.seed` (from backend/, REDIS_URL set).

All ZADDs go out in one pipeline: one round trip to Redis instead of one per player.
"""

import asyncio
import os

import redis.asyncio as redis

REDIS_URL = os.getenv("REDIS_URL", "redis://localhost:6379/0")
LEADERBOARD_KEY = "leaderboard"
PLAYERS = 20


async def seed() -> None:
    client = redis.from_url(REDIS_URL, decode_responses=True)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for n in range(1, PLAYERS + 1):
                pipe.zadd(LEADERBOARD_KEY, {f"player{n:02d}": n * 10})
            await pipe.execute()
    finally:
        await client.aclose()
    print(f"seeded {PLAYERS} players into {LEADERBOARD_KEY!r}")


if __name__ == "__main__":
    asyncio.run(seed())
