"""grader.probe against real uvicorn apps from tests/apps/: each virtual client's address reaches the app (as
its source address, or in X-Forwarded-For over a Unix socket), and no reply can hang a check: a body that never
ends is cut at MAX_BODY, one that drips is ended by the total deadline."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

from grader.app import AppLaunch, RunningApp, root_status, wait_until_answering
from grader.probe import MAX_BODY, Probe
from grader.runtime import ClientAddressing
from grader.sandbox import SandboxedProcess

APPS = Path(__file__).resolve().parent / "apps"


def _started(name: str) -> RunningApp:
    app = RunningApp(AppLaunch(python=sys.executable, app_dir=APPS / name, target="main:app"))
    assert app.start().ready, app.log_tail()
    return app


def _get(probe: Probe, path: str):
    async def main():
        try:
            return await probe.client().get(path)
        finally:
            await probe.aclose()

    return asyncio.run(main())


def test_each_client_binds_its_own_source_address() -> None:
    with _started("hello") as app:
        reply = _get(Probe(app.base_url), "/whoami")
    assert reply.status == 200 and reply.body["client"] == "127.0.1.1"
    assert not reply.truncated


def test_a_body_that_never_ends_is_cut_at_the_cap() -> None:
    # The readiness poll reads the status line only, so this app counts as started.
    with _started("endless") as app:
        reply = _get(Probe(app.base_url, timeout=30), "/openapi.json")
    assert reply.status == 200 and reply.error is None
    assert reply.truncated and len(reply.text) == MAX_BODY
    assert reply.body is None  # not JSON: the check treats it as no OpenAPI document


def test_a_body_that_drips_is_ended_by_the_total_deadline() -> None:
    # Every read gets a byte well within httpx's per-read timeout: only the total deadline stops it.
    with _started("drip") as app:
        reply = _get(Probe(app.base_url, timeout=1.5), "/health")
    assert reply.status is None
    assert reply.error == "timed out after 1.5 s"


def test_over_a_unix_socket_the_address_travels_in_x_forwarded_for(tmp_path: Path) -> None:
    # As in a container without network: uvicorn on a Unix socket, trusting the forwarded headers.
    sock = tmp_path / "app.sock"
    argv = [sys.executable, "-m", "uvicorn", "main:app", "--uds", str(sock), "--proxy-headers",
            "--forwarded-allow-ips", "*", "--no-access-log"]  # fmt: skip

    def connect(timeout: float) -> socket.socket:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(timeout)
        try:
            client.connect(str(sock))
        except OSError:
            client.close()
            raise
        return client

    with SandboxedProcess(argv, APPS / "hello") as proc:
        import time

        state = wait_until_answering(
            lambda: proc.poll() is not None, lambda t: root_status(connect, t, "127.0.0.2"), time.monotonic() + 30
        )
        assert state == "ready", proc.log_tail()
        reply = _get(Probe("http://app", addressing=ClientAddressing(uds=str(sock))), "/whoami")
        assert reply.status == 200 and reply.body["client"] == "127.0.1.1"
        assert "hello: request from 127.0.0.2" in proc.output()  # the readiness poll's own address
