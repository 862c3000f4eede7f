"""Bringing the grader's Redis back to a usable state after whatever a submission did to it.

The proxy refuses the commands that administer the server, but some harm goes through anyway: a Lua script or
function that never ends keeps Redis answering BUSY, and a submission's own tests may run against a Redis
directly (the isolated checks). `restore()` runs before each check's fresh state: a script past its time is
killed; a server that is gone, paused, password-protected or running a script that cannot be killed (it wrote)
is replaced by a fresh one at the same address. Every call to Redis here has a short timeout: a wedged server
is detected, never waited on.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from grader.services.base import BUSY_AFTER_MS, RedisServer

log = logging.getLogger(__name__)

# Seconds the grader waits for an answer. A healthy, empty Redis answers in well under a millisecond; a large
# dataset left by a check may take a moment to flush.
ANSWER_TIMEOUT = 3.0
# How long a killed script may take to let go of the server.
_KILLED_WITHIN = 2.0


async def restore(server: RedisServer, timeout: float = ANSWER_TIMEOUT) -> str | None:
    """Make `server` answer again, emptied. None when nothing was wrong; otherwise one line saying what was wrong
    and what was done, for the check's message or the result's warnings."""
    return await asyncio.to_thread(restore_now, server, timeout)


def restore_now(server: RedisServer, timeout: float = ANSWER_TIMEOUT) -> str | None:
    """restore(), blocking."""
    problem = _problem(server, timeout)
    if problem is None:
        return None
    if problem.startswith("BUSY"):
        killed = _kill_script(server, timeout)
        if killed is not None:
            return f"Redis was running a script past {BUSY_AFTER_MS} ms; the grader stopped it with {killed}"
        problem = "was running a script that cannot be stopped (it wrote data)"
    what = f"Redis {problem}"
    if server.replace is None:
        log.info("%s, and it cannot be replaced", what)
        return f"{what}; it could not be replaced"
    log.info("%s: replacing it with a fresh server", what)
    try:
        server.replace()
    except Exception as exc:  # noqa: BLE001 - the note says so; the next check then fails with its own reason
        return f"{what}; replacing it failed: {exc}"
    still = _problem(server, timeout)
    if still is not None:
        return f"{what}; the fresh server replacing it {still}"
    return f"{what}; the grader replaced it with a fresh, empty server"


def _client(server: RedisServer, timeout: float) -> redis.Redis:
    # No retries: a retry would hide (and multiply) the very timeouts this module looks for.
    return redis.Redis(host=server.host, port=server.port, socket_timeout=timeout, socket_connect_timeout=timeout,
                       retry=Retry(NoBackoff(), 0), decode_responses=True)


def _problem(server: RedisServer, timeout: float) -> str | None:
    """What is wrong with the server, or None when it answers and empties itself (a write: a server paused for
    writes still answers PING)."""
    client = _client(server, timeout)
    try:
        client.flushall()
        return None
    except redis.AuthenticationError:
        return "asks for a password (CONFIG SET requirepass)"
    except redis.TimeoutError:
        return f"did not answer within {timeout:g} s (paused or wedged)"
    except redis.ConnectionError as exc:
        return f"cannot be reached ({exc})"
    except redis.ResponseError as exc:
        text = str(exc)
        return text if text.startswith("BUSY") else f"answered an error: {text}"
    except redis.RedisError as exc:
        return f"failed: {type(exc).__name__}: {exc}"
    finally:
        client.close()


def _kill_script(server: RedisServer, timeout: float) -> str | None:
    """Stop a running script or function; which command did it, or None when neither could."""
    client = _client(server, timeout)
    try:
        for command in ("SCRIPT KILL", "FUNCTION KILL"):
            try:
                client.execute_command(*command.split())
            except redis.RedisError as exc:
                log.debug("%s: %s", command, exc)
                continue
            if _answers_within(server, timeout, _KILLED_WITHIN):
                return command
        return None
    finally:
        client.close()


def _answers_within(server: RedisServer, timeout: float, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if _problem(server, timeout) is None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
