"""What a submission cannot do to the grader's Redis: administration commands sent through the proxy are refused,
and a script that never ends is stopped (or its server replaced) by the guard. All against a real redis-server
and a real RedisProxy."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from conftest import REDIS_IMAGE, SUBMISSIONS, require

from grader.proxy import RedisProxy
from grader.runner import GradeOptions, grade
from grader.services import RedisServer, find_local_redis_server, start_redis
from grader.services.guard import restore_now

ENDLESS = "while true do end"
ENDLESS_AFTER_A_WRITE = "redis.call('SET', 'k', 'v') while true do end"
HEALTH = "async def health(r: RedisDep):\n    try:\n        await r.ping()\n"
# The reference submission with /health made careless, one edit each: (text that must occur once in main.py, new text).
TAMPERING_EDITS = {
    "endless_script": (HEALTH, """\
async def health(r: RedisDep):
    # Careless: a script that wrote, then never ends. Redis cannot kill it; only replacing the server helps.
    try:
        await r.eval("redis.call('SET', 'health', 'checked') while true do end", 0)
"""),
    "admin_commands": (HEALTH, """\
async def health(r: RedisDep):
    # Careless: "health" administers the server it should only look at.
    for command in (("CONFIG", "SET", "requirepass", "x"), ("CLIENT", "PAUSE", "100000"),
                    ("CLIENT", "KILL", "TYPE", "normal"), ("SHUTDOWN", "NOSAVE")):
        try:
            await r.execute_command(*command)
        except RedisError:
            pass
    try:
        await r.ping()
"""),
}  # fmt: skip


def _reference_with_edit(target: Path, old: str, new: str) -> Path:
    """A copy of the reference submission in `target` with `old` (which must occur exactly once in its main.py)
    replaced by `new`, so a change to the reference that would silently defuse the edit fails loudly."""
    shutil.copytree(SUBMISSIONS / "reference", target, ignore=shutil.ignore_patterns("__pycache__", ".*_cache"))
    main = target / "backend" / "app" / "main.py"
    text = main.read_text()
    assert text.count(old) == 1, f"expected one {old!r} in the reference's main.py, found {text.count(old)}"
    main.write_text(text.replace(old, new))
    return target


@pytest.fixture
def server() -> Iterator[RedisServer]:
    require(find_local_redis_server() is not None, "no local redis-server")
    with start_redis("local") as started:
        yield started


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[RedisProxy]:
    with RedisProxy(server.host, server.port) as started:
        yield started


def _client(endpoint: RedisServer | RedisProxy) -> redis.Redis:
    return redis.Redis.from_url(endpoint.url, socket_timeout=10, decode_responses=True)


def _usable(server: RedisServer) -> bool:
    client = _client(server)
    try:
        client.set("probe", "1")
        return client.get("probe") == "1" and client.flushall()
    finally:
        client.close()


@pytest.mark.parametrize("command", [
    ("CONFIG", "SET", "requirepass", "x"),
    ("CLIENT", "PAUSE", "100000"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("SHUTDOWN", "NOSAVE"),
    ("DEBUG", "SLEEP", "0"),
    ("REPLICAOF", "127.0.0.1", "1"),
    ("ACL", "SETUSER", "default", "off"),
])  # fmt: skip
def test_administration_through_the_proxy_is_refused_and_redis_stays_usable(
    server: RedisServer, proxy: RedisProxy, command: tuple[str, ...]
) -> None:
    app = _client(proxy)
    try:
        with pytest.raises(redis.ResponseError, match="is disabled by the grader"):
            app.execute_command(*command)
        assert app.ping()  # the app's own connection goes on
    finally:
        app.close()
    assert _usable(server)
    refused = [c for c in proxy.trace.all() if c.refused]
    assert [c.name for c in refused] == [command[0]]
    assert refused[0].reply is not None and "disabled by the grader" in refused[0].reply
    assert not refused[0].dropped


def test_what_real_apps_send_is_not_refused(proxy: RedisProxy) -> None:
    app = _client(proxy)
    try:
        assert app.client_setname("shop")
        assert app.client_id() > 0
        assert app.config_get("maxmemory")
        assert app.config_set("notify-keyspace-events", "Ex")
        sha = app.script_load("return 1")
        assert app.evalsha(sha, 0) == 1
    finally:
        app.close()
    assert not any(c.refused for c in proxy.trace.all())


def test_a_refused_command_in_a_transaction_aborts_it_as_redis_would(proxy: RedisProxy, server: RedisServer) -> None:
    app = _client(proxy)
    try:
        pipe = app.pipeline(transaction=True)
        pipe.set("a", "1")
        pipe.execute_command("CONFIG", "SET", "requirepass", "x")
        with pytest.raises(redis.ResponseError, match="disabled-by-the-grader"):
            pipe.execute()
        assert app.get("a") is None
    finally:
        app.close()
    assert _usable(server)


def _run_in_background(proxy: RedisProxy, script: str) -> threading.Thread:
    """An app's request that runs `script` through the proxy: it never returns by itself."""

    def run() -> None:
        client = redis.Redis.from_url(proxy.url)
        try:
            client.eval(script, 0)
        except redis.RedisError:
            pass  # killed, or its server replaced
        finally:
            client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_until_busy(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url, socket_timeout=10)
    try:
        for _ in range(200):
            try:
                client.ping()
            except redis.ResponseError as exc:
                if str(exc).startswith("BUSY"):
                    return
            threading.Event().wait(0.05)
        pytest.fail("Redis never answered BUSY")
    finally:
        client.close()


def _restore_from_a_busy_script(server: RedisServer, proxy: RedisProxy, script: str) -> tuple[str | None, int]:
    """Runs `script` through the proxy until Redis is BUSY, restores it, and checks it serves again: the guard's
    note and the server's process id before the script."""
    pid = _client(server).info("server")["process_id"]
    runner = _run_in_background(proxy, script)
    _wait_until_busy(server)
    note = restore_now(server)
    runner.join(10)
    assert not runner.is_alive()
    assert _usable(server)
    return note, pid


def test_an_endless_script_is_killed_and_redis_serves_again(server: RedisServer, proxy: RedisProxy) -> None:
    note, pid = _restore_from_a_busy_script(server, proxy, ENDLESS)
    assert note is not None and "SCRIPT KILL" in note
    assert _client(server).info("server")["process_id"] == pid  # the same server: nothing was replaced
    assert restore_now(server) is None


def test_a_script_that_wrote_then_loops_gets_its_server_replaced(server: RedisServer, proxy: RedisProxy) -> None:
    note, pid = _restore_from_a_busy_script(server, proxy, ENDLESS_AFTER_A_WRITE)
    assert note is not None and "replaced" in note
    assert _client(server).info("server")["process_id"] != pid
    app = _client(proxy)  # a new connection through the proxy reaches the replacement
    try:
        assert app.set("after", "1") and app.get("after") == "1"
    finally:
        app.close()


def test_an_endless_function_is_killed(server: RedisServer, proxy: RedisProxy) -> None:
    require(server.major_version >= 7, "Redis Functions need Redis 7")
    _client(server).function_load("#!lua name=spin\nredis.register_function('spin', function() while true do end end)")
    runner = threading.Thread(target=lambda: _swallow(lambda: _client(proxy).fcall("spin", 0)), daemon=True)
    runner.start()
    _wait_until_busy(server)
    note = restore_now(server)
    assert note is not None and "FUNCTION KILL" in note
    runner.join(10)
    assert _usable(server)


def _swallow(call: Callable[[], object]) -> None:
    try:
        call()
    except redis.RedisError:
        pass


@pytest.mark.parametrize("tamper", [
    ("CONFIG", "SET", "requirepass", "secret"),
    ("CLIENT", "PAUSE", "100000"),
    ("SHUTDOWN", "NOSAVE"),
])  # fmt: skip
def test_a_server_tampered_with_directly_is_replaced(server: RedisServer, tamper: tuple[str, ...]) -> None:
    """The isolated checks' Redis has no proxy in front: a submission's tests may reach it directly."""
    direct = _client(server)
    try:
        direct.execute_command(*tamper)
    except redis.RedisError:
        pass  # SHUTDOWN closes the connection
    finally:
        direct.close()
    note = restore_now(server, timeout=1.0)
    assert note is not None and "replaced" in note
    assert _usable(server)


def test_a_healthy_server_needs_nothing(server: RedisServer) -> None:
    assert restore_now(server) is None


@pytest.mark.parametrize("app", sorted(TAMPERING_EDITS))
def test_a_submission_that_tampers_with_redis_is_still_graded(app: str, tmp_path: Path) -> None:
    """The reference submission whose /health runs a script that wrote and never ends (Redis must be replaced),
    or sends CONFIG SET requirepass, CLIENT PAUSE, CLIENT KILL and SHUTDOWN (refused)."""
    require(find_local_redis_server() is not None, "no local redis-server")
    submission = _reference_with_edit(tmp_path / app, *TAMPERING_EDITS[app])
    result = grade(submission, GradeOptions(env="current", redis="local"))
    assert result["status"] == "graded", result.get("error")
    outcomes = {check["id"]: check["outcome"] for check in result["checks"]}
    assert outcomes and all(outcomes.values())
    assert not [check["id"] for check in result["checks"] if "traceback" in (check.get("evidence") or {})]
    assert not [check["id"] for check in result["checks"] if check["outcome"] == "error"]
    assert outcomes["app.starts"] == "passed"
    assert outcomes["leaderboard.score"] == "passed"  # checks after the damage judge the app, not a broken Redis
    assert outcomes["health.redis_ping"] == ("passed" if app == "admin_commands" else "failed")


@pytest.mark.docker
def test_a_container_tampered_with_is_replaced_on_the_same_port(docker_engine: None) -> None:
    with start_redis("docker", image=REDIS_IMAGE) as server:
        assert _client(server).config_get("lua-time-limit") == {"lua-time-limit": "1000"}
        direct = _client(server)
        try:
            direct.execute_command("CONFIG", "SET", "requirepass", "secret")
        finally:
            direct.close()
        note = restore_now(server)
        assert note is not None and "replaced" in note
        assert _usable(server)
