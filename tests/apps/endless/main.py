"""Every path (/openapi.json too) answers 200 at once and then streams its body forever, as fast as it can."""

import asyncio

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
CHUNK = b"x" * 65536


async def forever():
    while True:
        yield CHUNK
        await asyncio.sleep(0)  # let the server serve others meanwhile (and notice a client that left)


@app.get("/{path:path}")
async def anything(path: str) -> StreamingResponse:
    return StreamingResponse(forever(), media_type="application/json")
