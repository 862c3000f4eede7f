"""Never finishes starting, but keeps logging while it waits (and ignores SIGTERM): its startup looks busy, so
only the start timeout ends it. For tests that need a grading to stay in its app's start."""

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

HEARTBEAT_S = 0.5


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # replaces uvicorn's handler: only SIGKILL stops us
    beats = 0
    while True:
        beats += 1
        print(f"lifespan: still waiting ({beats})", flush=True)
        await asyncio.sleep(HEARTBEAT_S)
    yield


app = FastAPI(lifespan=lifespan)
