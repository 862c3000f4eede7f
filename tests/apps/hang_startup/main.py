"""Starts and never finishes starting: the lifespan waits forever and ignores SIGTERM."""

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # replaces uvicorn's handler: only SIGKILL stops us
    print("lifespan: waiting forever", flush=True)
    await asyncio.Event().wait()
    yield


app = FastAPI(lifespan=lifespan)
