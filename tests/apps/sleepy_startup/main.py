"""Waits through part of its startup, then serves. Env STARTUP_SLEEP_S: a sleep (default 3 s), which uses no
processor time and logs nothing while it lasts. Env STARTUP_CHILD_BUSY_S (default 0): before the sleep, a child
process computes that long, silently, while the app itself waits for it."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

BUSY = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    busy_s = float(os.environ.get("STARTUP_CHILD_BUSY_S", "0"))
    if busy_s > 0:
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", BUSY, str(busy_s))
        await child.wait()
        print("lifespan: child done", flush=True)
    print("lifespan: sleeping before serving", flush=True)
    await asyncio.sleep(float(os.environ.get("STARTUP_SLEEP_S", "3")))
    print("lifespan: awake", flush=True)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "awake"}
