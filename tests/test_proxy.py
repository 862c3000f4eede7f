"""The RESP proxy against a real redis-server, driven by redis-py's asyncio client (and raw sockets where the
exact bytes matter)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import pytest
import redis
import redis.asyncio as aioredis

from grader.ports import free_port
from grader.proxy import Command, Fault, RedisProxy, Trace
from grader.proxy_trace import ARG_PREVIEW, MAX_ARGS
from grader.resp import RespParser, encode_command

T = TypeVar("T")
DROPPED = b"-ERR dropped by redis-grader fault injection\r\n"


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private redis-server for this module (the shared conftest may replace this later)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH")
    workdir: Path = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_timeout=2)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.fail(f"redis-server exited with {proc.returncode}")
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer PING")
        client.close()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def no_event_loop_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """An exception inside the proxy's loop is only logged (by asyncio); make it fail the test."""
    yield
    errors = [r for r in caplog.get_records("call") if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert not errors, "\n".join(r.getMessage() for r in errors)


@pytest.fixture
def direct(redis_port: int) -> Iterator[redis.Redis]:
    """A client straight to Redis, bypassing the proxy: asks Redis what really happened."""
    client = redis.Redis(port=redis_port, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def proxy(redis_port: int, direct: redis.Redis) -> Iterator[RedisProxy]:
    with RedisProxy("127.0.0.1", redis_port) as p:
        yield p


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(bounded())


def client(proxy: RedisProxy, **kwargs: object) -> aioredis.Redis:
    return aioredis.Redis.from_url(proxy.url, decode_responses=True, **kwargs)


def app_commands(trace: list[Command]) -> list[Command]:
    """The trace without redis-py's connection handshake."""
    return [c for c in trace if c.name not in ("HELLO", "CLIENT")]


class RawClient:
    """A bare socket speaking RESP, for tests about exact bytes and ordering."""

    def __init__(self, proxy: RedisProxy) -> None:
        self.sock = socket.create_connection((proxy.host, proxy.port), timeout=10)
        self.parser = RespParser()
        self.frames: list = []

    def send(self, *commands: tuple) -> None:
        self.sock.sendall(b"".join(encode_command(*c) for c in commands))

    def replies(self, n: int) -> list[bytes]:
        while len(self.frames) < n:
            data = self.sock.recv(65536)
            assert data, "connection closed early"
            self.frames += self.parser.feed(data)
        got, self.frames = self.frames[:n], self.frames[n:]
        return [f.raw for f in got]

    def close(self) -> None:
        self.sock.close()


# -- recording ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
def test_get_set_round_trip_is_recorded_with_replies(proxy: RedisProxy, direct: redis.Redis, protocol: int) -> None:
    async def scenario() -> str | None:
        r = client(proxy, protocol=protocol, client_name="grader-test")
        await r.set("greeting", "hello")
        value = await r.get("greeting")
        await r.get("missing")
        await r.aclose()
        return value

    mark = proxy.trace.mark()
    assert run(scenario()) == "hello"
    assert direct.get("greeting") == "hello"
    commands = proxy.trace.since(mark)
    # The handshake passes through and is recorded too.
    assert commands[0].name == "HELLO" if protocol == 3 else commands[0].name == "CLIENT"
    assert any(c.name == "CLIENT" and c.args[:2] == ("SETNAME", "grader-test") and c.reply == "+OK" for c in commands)
    set_, get, miss = app_commands(commands)
    assert (str(set_), set_.reply, set_.key) == ("SET greeting hello", "+OK", "greeting")
    assert (str(get), get.reply) == ("GET greeting", "\"hello\"")
    assert miss.reply == "nil"
    assert not any(c.pipelined or c.in_multi or c.dropped for c in (set_, get, miss))
    assert [c.seq for c in commands] == sorted(c.seq for c in commands)
    assert set_.time <= get.time <= miss.time
    assert len({c.conn for c in commands}) == 1


def test_select_auth_setname_pass_through(proxy: RedisProxy, direct: redis.Redis) -> None:
    async def scenario() -> str | None:
        r = aioredis.Redis.from_url(f"redis://{proxy.host}:{proxy.port}/2", decode_responses=True, client_name="me")
        await r.set("in-db-2", "x")
        name = await r.client_getname()
        await r.aclose()
        return name

    assert run(scenario()) == "me"
    assert direct.execute_command("SELECT", 2) and direct.get("in-db-2") == "x"
    assert any(c.name == "SELECT" and c.args == ("2",) and c.reply == "+OK" for c in proxy.trace.all())

    raw = RawClient(proxy)
    try:
        raw.send(("AUTH", "secret"))
        [reply] = raw.replies(1)
    finally:
        raw.close()
    assert reply.startswith(b"-ERR AUTH")  # Redis's own answer: no password is configured
    assert proxy.trace.all()[-1].name == "AUTH"


def test_pipeline_commands_are_flagged_pipelined(proxy: RedisProxy, direct: redis.Redis) -> None:
    async def scenario() -> list:
        r = client(proxy)
        await r.ping()
        async with r.pipeline(transaction=False) as pipe:
            for i in range(5):
                pipe.zadd("board", {f"user{i}": i})
            result = await pipe.execute()
        await r.zcard("board")
        await r.aclose()
        return result

    mark = proxy.trace.mark()
    assert run(scenario()) == [1] * 5
    commands = app_commands(proxy.trace.since(mark))
    assert [c.name for c in commands] == ["PING"] + ["ZADD"] * 5 + ["ZCARD"]
    assert [c.pipelined for c in commands] == [False, False, True, True, True, True, False]
    assert all(c.reply == ":1" for c in commands[1:6])
    assert direct.zcard("board") == 5


def test_multi_exec_is_flagged_in_multi(proxy: RedisProxy, direct: redis.Redis) -> None:
    async def scenario() -> list:
        r = client(proxy)
        async with r.pipeline(transaction=True) as pipe:
            result = await pipe.incr("counter").expire("counter", 60).execute()
        await r.aclose()
        return result

    mark = proxy.trace.mark()
    assert run(scenario()) == [1, True]
    commands = app_commands(proxy.trace.since(mark))
    assert [(c.name, c.in_multi, c.reply) for c in commands] == [
        ("MULTI", False, "+OK"),
        ("INCRBY", True, "+QUEUED"),
        ("EXPIRE", True, "+QUEUED"),
        ("EXEC", False, "*2"),
    ]
    assert 0 < direct.ttl("counter") <= 60


def test_eval_and_evalsha_are_recorded_with_their_key(proxy: RedisProxy) -> None:
    lua = """
        local current = redis.call('INCR', KEYS[1])
        if current == 1 then
            redis.call('EXPIRE', KEYS[1], ARGV[1])
        end
        return current
    """

    async def scenario() -> list:
        r = client(proxy)
        first = await r.eval(lua, 1, "rate:ip:127.0.1.9", 60)
        await r.script_flush()  # so register_script has to load it
        limiter = r.register_script(lua)  # SCRIPT LOAD once (after NOSCRIPT), then EVALSHA only
        second = await limiter(keys=["rate:ip:127.0.1.9"], args=[60])
        third = await limiter(keys=["rate:ip:127.0.1.9"], args=[60])
        await r.aclose()
        return [first, second, third]

    mark = proxy.trace.mark()
    assert run(scenario()) == [1, 2, 3]
    commands = app_commands(proxy.trace.since(mark))
    eval_ = commands[0]
    assert eval_.name == "EVAL" and eval_.key == "rate:ip:127.0.1.9" and eval_.reply == ":1"
    assert str(eval_).startswith("EVAL \"local current = redis.call('INCR', KEYS[1]) if current")
    assert str(eval_).endswith('..." 1 rate:ip:127.0.1.9 60')
    assert any(c.name == "SCRIPT" and c.args[0].upper() == "LOAD" and "INCR" in c.args[1] for c in commands)
    evalshas = [c for c in commands if c.name == "EVALSHA" and c.reply and c.reply.startswith(":")]
    assert [c.reply for c in evalshas] == [":2", ":3"]
    assert all(c.key == "rate:ip:127.0.1.9" for c in evalshas)


def test_inline_commands_are_recorded_and_answered(proxy: RedisProxy) -> None:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=10)
    try:
        sock.sendall(b"PING\r\nset inline:k \"a b\"\r\nget inline:k\r\n")
        parser, frames = RespParser(), []
        while len(frames) < 3:
            frames += parser.feed(sock.recv(4096))
    finally:
        sock.close()
    assert [f.raw for f in frames] == [b"+PONG\r\n", b"+OK\r\n", b"$3\r\na b\r\n"]
    assert [(c.name, c.args, c.reply) for c in proxy.trace.all()] == [
        ("PING", (), "+PONG"),
        ("SET", ("inline:k", "a b"), "+OK"),
        ("GET", ("inline:k",), "\"a b\""),
    ]


def test_trace_mark_since_and_clear(proxy: RedisProxy) -> None:
    raw = RawClient(proxy)
    try:
        raw.send(("SET", "a", "1"))
        raw.replies(1)
        mark = proxy.trace.mark()
        raw.send(("GET", "a"))
        raw.replies(1)
        assert [str(c) for c in proxy.trace.since(mark)] == ["GET a"]
        proxy.trace.clear()
        assert proxy.trace.all() == [] and proxy.trace.since(mark) == []
        raw.send(("DEL", "a"))
        raw.replies(1)
        assert [(str(c), c.reply) for c in proxy.trace.since(mark)] == [("DEL a", ":1")]
    finally:
        raw.close()


def test_command_key_and_str() -> None:
    def cmd(name: str, *args: str) -> Command:
        return Command(0, 1, 0.0, name, args, pipelined=False, in_multi=False, dropped=False)

    assert cmd("GET", "k").key == "k"
    assert cmd("PING").key is None
    assert cmd("EVALSHA", "abc", "2", "k1", "k2", "arg").key == "k1"
    assert cmd("EVAL", "return 1", "0", "arg").key is None
    assert cmd("FCALL", "limit", "1", "rate:ip:1").key == "rate:ip:1"
    assert str(cmd("SET", "k", "x" * 500)) == "SET k " + "x" * 57 + "..."
    assert str(cmd("SET", "k", "")) == 'SET k ""'


# -- faults ------------------------------------------------------------------------------------------------------


def test_dropped_expire_leaves_key_without_ttl_and_client_sees_error(proxy: RedisProxy, direct: redis.Redis) -> None:
    proxy.add_fault(Fault(lambda c: c.name == "EXPIRE"))

    async def scenario() -> Exception | None:
        r = client(proxy)
        await r.incr("rate:ip:127.0.1.9")
        try:
            await r.expire("rate:ip:127.0.1.9", 60)
        except redis.ResponseError as exc:
            return exc
        finally:
            await r.aclose()
        return None

    error = run(scenario())
    assert error is not None and "fault injection" in str(error)
    assert direct.get("rate:ip:127.0.1.9") == "1"
    assert direct.ttl("rate:ip:127.0.1.9") == -1  # the EXPIRE never reached Redis
    [expire] = [c for c in proxy.trace.all() if c.name == "EXPIRE"]
    assert expire.dropped and expire.reply == "-ERR dropped by redis-grader fault injection"


@pytest.mark.parametrize("position", [0, 1, 2])
def test_dropped_command_keeps_reply_order_in_a_pipeline(proxy: RedisProxy, position: int) -> None:
    commands = [("SET", "p", "A"), ("ECHO", "middle"), ("GET", "p")]
    real = [b"+OK\r\n", b"$6\r\nmiddle\r\n", b"$1\r\nA\r\n"]
    target = commands[position][0]
    proxy.add_fault(Fault(lambda c: c.name == target))
    raw = RawClient(proxy)
    try:
        raw.send(*commands, ("PING",))
        got = raw.replies(4)
    finally:
        raw.close()
    expected = list(real)
    expected[position] = DROPPED
    if position == 0:
        expected[2] = b"$-1\r\n"  # the SET never happened
    assert got == expected + [b"+PONG\r\n"]
    trace = proxy.trace.all()
    assert [c.dropped for c in trace] == [i == position for i in range(4)]


def test_dropped_middle_command_through_redis_py_pipeline(proxy: RedisProxy, direct: redis.Redis) -> None:
    proxy.add_fault(Fault(lambda c: c.name == "EXPIRE"))

    async def scenario() -> list:
        r = client(proxy)
        async with r.pipeline(transaction=False) as pipe:
            result = await pipe.set("k", "v").expire("k", 30).get("k").execute(raise_on_error=False)
        await r.aclose()
        return result

    first, second, third = run(scenario())
    assert first is True and isinstance(second, redis.ResponseError) and third == "v"
    assert direct.ttl("k") == -1


def test_dropped_command_keeps_its_place_behind_latency(proxy: RedisProxy) -> None:
    proxy.add_fault(Fault(lambda c: c.name == "ECHO"))
    proxy.latency = 0.1
    raw = RawClient(proxy)
    try:
        raw.send(("SET", "q", "1"), ("ECHO", "x"), ("INCR", "q"))
        raw.send(("ECHO", "y"))  # a batch of only a dropped command pays the latency too
        raw.send(("GET", "q"))
        got = raw.replies(5)
    finally:
        raw.close()
    assert got == [b"+OK\r\n", DROPPED, b":2\r\n", DROPPED, b"$1\r\n2\r\n"]


def test_times_one_drops_once_only(proxy: RedisProxy, direct: redis.Redis) -> None:
    handle = proxy.add_fault(Fault(lambda c: c.name == "EXPIRE", times=1))
    assert handle > 0

    async def scenario() -> list:
        r = client(proxy)
        await r.set("k", "v")
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(await r.expire("k", 100))
            except redis.ResponseError:
                outcomes.append("dropped")
        await r.aclose()
        return outcomes

    assert run(scenario()) == ["dropped", True, True]
    assert [c.dropped for c in proxy.trace.all() if c.name == "EXPIRE"] == [True, False, False]
    assert 0 < direct.ttl("k") <= 100


def test_remove_and_clear_faults(proxy: RedisProxy) -> None:
    raw = RawClient(proxy)
    try:
        handle = proxy.add_fault(Fault(lambda c: c.name == "PING", reply=b"+FAKE\r\n"))
        raw.send(("PING",))
        assert raw.replies(1) == [b"+FAKE\r\n"]
        proxy.remove_fault(handle)
        raw.send(("PING",))
        assert raw.replies(1) == [b"+PONG\r\n"]
        proxy.add_fault(Fault(lambda c: c.name == "PING", reply=b":7\r\n"))
        proxy.clear_faults()
        raw.send(("PING",))
        assert raw.replies(1) == [b"+PONG\r\n"]
    finally:
        raw.close()
    assert [c.reply for c in proxy.trace.all()] == ["+FAKE", "+PONG", "+PONG"]


def test_fault_reply_must_be_one_resp_value(proxy: RedisProxy) -> None:
    for bad in (b"oops", b"+OK", b"+OK\r\n+OK\r\n"):
        with pytest.raises(ValueError, match="RESP"):
            proxy.add_fault(Fault(lambda c: True, reply=bad))


def test_faults_never_touch_a_transaction(proxy: RedisProxy, direct: redis.Redis) -> None:
    proxy.add_fault(Fault(lambda c: c.name in ("MULTI", "EXPIRE", "EXEC")))

    async def scenario() -> list:
        r = client(proxy)
        async with r.pipeline(transaction=True) as pipe:
            result = await pipe.set("t", "1").expire("t", 50).execute()
        await r.aclose()
        return result

    assert run(scenario()) == [True, True]
    assert 0 < direct.ttl("t") <= 50
    assert not any(c.dropped for c in proxy.trace.all())


def test_broken_fault_predicate_counts_as_no_match(proxy: RedisProxy) -> None:
    proxy.add_fault(Fault(lambda c: 1 / 0))
    raw = RawClient(proxy)
    try:
        raw.send(("PING",))
        assert raw.replies(1) == [b"+PONG\r\n"]
    finally:
        raw.close()


# -- reachability, latency, load, lifecycle ----------------------------------------------------------------------


def test_unreachable_fails_fast_and_recovers(proxy: RedisProxy) -> None:
    async def scenario() -> None:
        r = client(proxy)
        assert await r.set("k", "v")
        proxy.set_reachable(False)
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(r.get("k"), 10)  # "does not hang", not a speed limit
        fresh = client(proxy)
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(fresh.ping(), 10)
        await fresh.aclose()
        proxy.set_reachable(True)
        assert await asyncio.wait_for(r.get("k"), 10) == "v"
        await r.aclose()

    run(scenario())


def test_upstream_down_gives_connection_error(redis_port: int) -> None:
    with RedisProxy("127.0.0.1", free_port()) as dead:

        async def scenario() -> None:
            r = client(dead)
            with pytest.raises(redis.ConnectionError):
                await asyncio.wait_for(r.ping(), 10)
            await r.aclose()

        run(scenario())
        assert dead.connections >= 1


def test_latency_is_added_to_each_round_trip(proxy: RedisProxy) -> None:
    async def timed(r: aioredis.Redis) -> float:
        start = time.monotonic()
        await r.ping()
        return time.monotonic() - start

    async def scenario() -> tuple[float, float]:
        r = client(proxy)
        await r.ping()  # connect first: the handshake is not what we measure
        proxy.latency = 0.25
        single = await timed(r)
        start = time.monotonic()
        async with r.pipeline(transaction=False) as pipe:
            for i in range(20):
                pipe.set(f"k{i}", i)
            assert await pipe.execute() == [True] * 20
        pipelined = time.monotonic() - start
        await r.aclose()
        return single, pipelined

    single, pipelined = run(scenario())
    assert single >= 0.25
    assert pipelined >= 0.25


def test_latency_keeps_order_when_changed_mid_flight(proxy: RedisProxy) -> None:
    raw = RawClient(proxy)
    try:
        proxy.latency = 0.3
        raw.send(("SET", "order", "first"))
        time.sleep(0.05)  # the first batch is read (and scheduled) before latency drops
        proxy.latency = 0
        raw.send(("GET", "order"))
        assert raw.replies(2) == [b"+OK\r\n", b"$5\r\nfirst\r\n"]
    finally:
        raw.close()


def test_latency_rejects_negative(proxy: RedisProxy) -> None:
    with pytest.raises(ValueError):
        proxy.latency = -1


def test_fifty_concurrent_clients_get_correct_answers(proxy: RedisProxy, direct: redis.Redis) -> None:
    clients_n, rounds = 50, 40

    async def one(i: int) -> bool:
        r = client(proxy)
        try:
            for n in range(rounds):
                await r.set(f"c:{i}:value", f"{i}-{n}")
                assert await r.get(f"c:{i}:value") == f"{i}-{n}"
                assert await r.incr(f"c:{i}:count") == n + 1
                await r.incr("shared")
            async with r.pipeline(transaction=False) as pipe:
                pipe.get(f"c:{i}:value").get(f"c:{i}:count")
                assert await pipe.execute() == [f"{i}-{rounds - 1}", str(rounds)]
            return True
        finally:
            await r.aclose()

    async def scenario() -> list[bool]:
        return await asyncio.gather(*(one(i) for i in range(clients_n)))

    assert run(scenario()) == [True] * clients_n
    assert direct.get("shared") == str(clients_n * rounds)
    assert proxy.connections >= clients_n
    commands = app_commands(proxy.trace.all())
    assert len(commands) == clients_n * (rounds * 4 + 2)
    assert all(c.reply is not None for c in commands)
    assert [c.seq for c in proxy.trace.all()] == list(range(len(proxy.trace)))


def test_large_binary_values_pass_unchanged(redis_port: int, direct: redis.Redis) -> None:
    value = bytes(range(256)) * 20_000  # ~5 MB with every byte value, CRLFs included
    with RedisProxy("127.0.0.1", redis_port) as proxy:

        async def scenario() -> bytes:
            r = aioredis.Redis.from_url(proxy.url)
            await r.set("big", value)
            got = await r.get("big")
            await r.aclose()
            return got

        assert run(scenario()) == value
        big_get = next(c for c in proxy.trace.all() if c.name == "GET")
        assert big_get.reply == f"${len(value)}"
    assert redis.Redis(port=redis_port).get("big") == value


def test_pubsub_does_not_break_the_proxy(proxy: RedisProxy) -> None:
    async def scenario() -> dict:
        r = client(proxy)
        pubsub = r.pubsub()
        await pubsub.subscribe("news")
        await pubsub.get_message(timeout=5)  # the subscribe confirmation
        await r.publish("news", "hello")
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message:
                break
        await pubsub.unsubscribe("news")
        await pubsub.aclose()
        assert await r.set("after", "ok")
        await r.aclose()
        return message

    message = run(scenario())
    assert message is not None and message["data"] == "hello"
    names = [c.name for c in proxy.trace.all()]
    assert "SUBSCRIBE" in names and "PUBLISH" in names and "UNSUBSCRIBE" in names


def test_resp3_push_on_a_command_connection_is_forwarded(proxy: RedisProxy, direct: redis.Redis) -> None:
    """Client-side caching sends invalidation pushes between replies: the proxy must keep forwarding."""
    raw = RawClient(proxy)
    try:
        raw.send(("HELLO", "3"), ("CLIENT", "TRACKING", "ON"), ("GET", "tracked"))
        assert raw.replies(3)[1:] == [b"+OK\r\n", b"_\r\n"]
        direct.set("tracked", "changed")  # Redis pushes an invalidation to the tracking client
        [push] = raw.replies(1)
        assert push.startswith(b">2\r\n$10\r\ninvalidate\r\n")
        raw.send(("GET", "tracked"), ("PING",))
        assert raw.replies(2) == [b"$7\r\nchanged\r\n", b"+PONG\r\n"]
    finally:
        raw.close()
    names = [c.name for c in proxy.trace.all()]
    assert names == ["HELLO", "CLIENT", "GET", "GET", "PING"]


def test_stop_returns_with_clients_still_connected(redis_port: int) -> None:
    proxy = RedisProxy("127.0.0.1", redis_port).start()
    idle = [socket.create_connection((proxy.host, proxy.port), timeout=10) for _ in range(5)]
    busy = socket.create_connection((proxy.host, proxy.port), timeout=10)
    # A client that keeps sending and never reads its replies.
    busy.sendall(encode_command("SET", "x", b"y" * 1_000_000) * 3)
    proxy.latency = 5  # and replies parked behind a long latency
    idle[0].sendall(encode_command("PING"))
    time.sleep(0.2)
    stopper = threading.Thread(target=proxy.stop)
    stopper.start()
    stopper.join(30)  # a hang guard, not a speed limit
    assert not stopper.is_alive(), "stop() hung"
    proxy.stop()  # idempotent
    try:  # the connection was closed: an orderly EOF or a reset
        assert idle[1].recv(10) == b""
    except ConnectionResetError:
        pass
    with pytest.raises(OSError):
        socket.create_connection((proxy.host, proxy.port), timeout=5).recv(1)
    for s in [*idle, busy]:
        s.close()


# -- a bounded trace ---------------------------------------------------------------------------------------------


def test_long_values_are_kept_as_previews_and_keys_whole(proxy: RedisProxy) -> None:
    key = "cache:" + "k" * 200  # a long key still fits the preview whole
    value = "v" * (ARG_PREVIEW * 100)
    raw = RawClient(proxy)
    try:
        raw.send(("SET", key, value, "EX", "60"))
        assert raw.replies(1) == [b"+OK\r\n"]
    finally:
        raw.close()
    command = proxy.trace.all()[-1]
    assert command.args == (key, "v" * ARG_PREVIEW, "EX", "60")
    assert command.sizes == (len(key), len(value), 2, 2)
    assert command.key == key and not command.cut(0) and command.cut(1) and not command.cut(2)
    assert f"({len(value)} bytes)" in str(command)


def test_a_command_keeps_its_first_arguments_only(proxy: RedisProxy, direct: redis.Redis) -> None:
    pairs = [part for index in range(MAX_ARGS) for part in (f"key:{index}", str(index))]
    raw = RawClient(proxy)
    try:
        raw.send(("MSET", *pairs))
        assert raw.replies(1) == [b"+OK\r\n"]
    finally:
        raw.close()
    assert direct.get(f"key:{MAX_ARGS - 1}") == str(MAX_ARGS - 1)  # everything reached Redis
    command = proxy.trace.all()[-1]
    assert command.args == tuple(pairs[:MAX_ARGS]) and command.omitted == len(pairs) - MAX_ARGS
    assert str(command).endswith(f"(+{command.omitted} more args)")


def test_the_trace_lets_its_oldest_commands_go(redis_port: int) -> None:
    with RedisProxy("127.0.0.1", redis_port) as proxy:
        proxy.trace = Trace(max_commands=100)
        raw = RawClient(proxy)
        try:
            mark = proxy.trace.mark()
            raw.send(*[("PING", str(n)) for n in range(250)])
            raw.replies(250)
        finally:
            raw.close()
        kept = proxy.trace.all()
        assert 0 < len(kept) <= 100 and proxy.trace.discarded == 250 - len(kept)
        assert [c.args[0] for c in kept] == [str(n) for n in range(250 - len(kept), 250)]  # the newest, in order
        assert [c.seq for c in proxy.trace.since(mark)] == [c.seq for c in kept]
        assert all(c.reply is not None for c in kept)


def test_the_trace_keeps_within_its_byte_budget() -> None:
    trace = Trace(max_bytes=100_000)
    for seq in range(1_000):
        trace._reserve()
        trace._append(Command(seq, 1, 0.0, "SET", (f"k{seq}", "v" * 1000), False, False, False))
    assert 0 < len(trace) < 100 and trace.discarded == 1_000 - len(trace)
    assert trace.all()[-1].args[0] == "k999"


def _bench(name: str) -> ModuleType:
    path = Path(__file__).parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_pushing_200_mb_through_the_proxy_keeps_its_memory_small() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    report = _bench("memory").measure(megabytes=200, value_kb=256)
    assert report.sent_mb >= 199
    assert report.growth_mb < 100, report
