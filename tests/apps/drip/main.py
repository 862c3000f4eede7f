"""Every path answers 200 at once and then drips its body, one byte every 0.2 s, forever: each read gets
something well within any per-read timeout, so only a total deadline ends the exchange."""

import asyncio

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


async def drip():
    while True:
        yield b" "
        await asyncio.sleep(0.2)


@app.get("/{path:path}")
async def anything(path: str) -> StreamingResponse:
    return StreamingResponse(drip(), media_type="application/json")
