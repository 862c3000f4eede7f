"""Answers every GET with HELLO_STATUS (default 200) and shows the REDIS_URL it was given."""

import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()
STATUS = int(os.environ.get("HELLO_STATUS", "200"))


@app.get("/{path:path}")
async def anything(path: str) -> JSONResponse:
    return JSONResponse({"path": path, "redis_url": os.environ.get("REDIS_URL")}, status_code=STATUS)
