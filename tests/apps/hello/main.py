"""Answers every GET with HELLO_STATUS (default 200) and shows the REDIS_URL it was given.
Logs each request's client address, so a test can see where the readiness polls came from."""

import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()
STATUS = int(os.environ.get("HELLO_STATUS", "200"))


@app.get("/{path:path}")
async def anything(path: str, request: Request) -> JSONResponse:
    client = request.client.host if request.client else None
    print(f"hello: request from {client}", flush=True)
    return JSONResponse({"path": path, "client": client, "redis_url": os.environ.get("REDIS_URL")}, status_code=STATUS)
