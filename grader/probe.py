"""HTTP to the app from many virtual clients, each with an address of its own (127.0.1.1, 127.0.1.2, ...).

How a client shows its address depends on the runtime (grader/runtime/base.py, ClientAddressing): locally it
binds it as its source address (uvicorn trusts X-Forwarded-For from 127.0.0.1, so no client ever uses that
one, and none sends the header); to an app in a container, reached over a Unix socket, it sends it in
X-Forwarded-For. Either way the app sees it in request.client.host.

Every exchange has a total deadline and a cap on the body it reads, so an app that streams forever or drips
bytes costs a check its time, never the grading its progress.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from grader import runtime
from grader.jsondata import parse_json
from grader.runtime import ClientAddressing

MAX_BODY = 1024 * 1024  # bytes read of a reply; the rest is dropped and the reply marked truncated

# A connection that uvicorn closed (e.g. after a 500 raised from middleware) fails on reuse with one of these;
# the request never reached the app, so sending it again on a fresh connection is safe.
_CONNECTION_GONE = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass
class Reply:
    method: str
    path: str
    client: str
    status: int | None
    text: str
    elapsed: float
    error: str | None = None
    truncated: bool = False  # the body was longer than MAX_BODY: `text` holds its beginning
    started: float | None = None  # time.monotonic() when the request was sent (the trace's clock); None if unknown

    @property
    def body(self) -> Any:
        """The JSON body, or None when it is not JSON (parse_json)."""
        return parse_json(self.text)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def __str__(self) -> str:
        seen = self.status if self.error is None else f"no answer ({self.error})"
        return f"{self.method} {self.path} from {self.client} -> {seen}"


class VirtualClient:
    """One client IP. Requests never raise: a failure is a Reply with `error` set."""

    def __init__(self, probe: Probe, ip: str):
        self.probe = probe
        self.ip = ip
        self._http = httpx.AsyncClient(
            base_url=probe.base_url,
            timeout=probe.timeout,
            verify=probe.tls,
            # A client follows redirects: `GET /products` answered 307 to `/products/` (a router's "/") is served.
            follow_redirects=True,
            headers=probe.addressing.headers(ip),
            transport=probe.addressing.transport(
                ip, verify=probe.tls, limits=httpx.Limits(max_connections=200, max_keepalive_connections=200)
            ),
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        self.probe.in_flight += 1
        self.probe.peak_in_flight = max(self.probe.peak_in_flight, self.probe.in_flight)
        started = time.monotonic()
        try:
            # The total deadline: httpx's own timeout bounds each read, not a body that never ends.
            return await asyncio.wait_for(self._exchange(method, path, started, **kwargs), self.probe.timeout)
        except (httpx.TimeoutException, asyncio.TimeoutError):
            return Reply(method, path, self.ip, None, "", time.monotonic() - started,
                         f"timed out after {self.probe.timeout:g} s", started=started)
        except httpx.HTTPError as exc:
            return Reply(method, path, self.ip, None, "", time.monotonic() - started, f"{type(exc).__name__}: {exc}",
                         started=started)
        finally:
            self.probe.in_flight -= 1

    async def _exchange(self, method: str, path: str, started: float, **kwargs: Any) -> Reply:
        for attempt in (1, 2):
            try:
                async with self._http.stream(method, path, **kwargs) as response:
                    body, truncated = await _capped_body(response)
                    text = body.decode(response.encoding or "utf-8", errors="replace")
                    return Reply(method, path, self.ip, response.status_code, text, time.monotonic() - started,
                                 truncated=truncated, started=started)  # fmt: skip
            except _CONNECTION_GONE:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("POST", path, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()


async def _capped_body(response: httpx.Response) -> tuple[bytes, bool]:
    """The body up to MAX_BODY bytes, and whether there was more (left unread: the connection is then closed)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_BODY:
            return bytes(body[:MAX_BODY]), True
    return bytes(body), False


class Probe:
    """Hands out virtual clients, each with an address no other client of this run has had."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, addressing: ClientAddressing | None = None):
        self.base_url = base_url
        self.timeout = timeout
        # By default, the addressing of the grading's runtime (TCP source addresses outside a grading).
        self.addressing = addressing if addressing is not None else runtime.current().addressing
        self.in_flight = 0
        self.peak_in_flight = 0
        self._next = 0
        self._clients: list[VirtualClient] = []
        # The app speaks plain HTTP, but httpx builds a TLS context for every client unless given one: ~20 ms
        # each, which a check that opens fifty clients would spend before sending its first request. This one
        # loads no certificates (another ~45 ms of processor time): it is never used for a handshake.
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    def client(self) -> VirtualClient:
        """A client with a fresh source address: 127.0.1.1 ... 127.0.1.254, then 127.0.2.1 ..."""
        self._next += 1
        third, fourth = divmod(self._next - 1, 254)
        client = VirtualClient(self, f"127.0.{1 + third}.{1 + fourth}")
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
