"""The docker runtime for real: every fixture graded in containers gets the outcomes fixtures/catalog.toml gives
it (as tests/test_fixtures.py holds the local runtime to them), and the containers are confined (no network, an
unprivileged user without capabilities, a read-only venv and submission) and all removed afterwards.

The app image is PYTHON_IMAGE (default local/python:3.11-bookworm, see DESIGN.md §7)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PYTHON_IMAGE, REDIS_IMAGE, SUBMISSIONS, python_image_engine, require
from test_fixtures import CATALOG, expected_outcomes

from grader import procfs
from grader.app import AppLaunch
from grader.ports import free_port
from grader.probe import Probe
from grader.proxy import RedisProxy
from grader.runtime import activated, open_runtime
from grader.runtime.container_env import INSTALL_NETWORK, install_network
from grader.runtime.containers import ENV_DIR, RELAY_SOURCE, write_job
from grader.runtime.docker import APP_SOCKET, BASE_URL, DockerRuntime, pinned_socket
from grader.runtime.forward import Forwarders
from grader.runtime.image_root import SKELETON_REPOSITORY, copies_images
from grader.services import OWNER_LABEL, find_local_redis_server, start_redis

APPS = Path(__file__).resolve().parent / "apps"
REDIS = "local" if find_local_redis_server() else "docker"

# Run inside a container by the tests below: prints what it can and cannot do, as JSON.
PROBE_INSIDE = r"""
import json, os, socket, sys
found = {"uid": os.getuid(), "interfaces": sorted(os.listdir("/sys/class/net"))}
found["cap_eff"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    found["host_server"] = "connected"
except OSError as exc:
    found["host_server"] = type(exc).__name__
for name, path in (("env_write", sys.argv[2] + "/written-by-the-submission"), ("workspace_write", "written.txt")):
    try:
        open(path, "w").close()
        found[name] = "written"
    except OSError as exc:
        found[name] = exc.strerror
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def app_image(docker_engine: None) -> str:  # every test that uses it is marked `docker`
    import docker

    with python_image_engine() as client:
        try:  # an image imported from a 0700 root directory cannot run as an unprivileged user
            client.containers.run(PYTHON_IMAGE, ["/bin/sh", "-c", "true"], user="65534:65534", network_mode="none",
                                  remove=True)  # fmt: skip
        except docker.errors.APIError as exc:
            require(False, f"{PYTHON_IMAGE} cannot run as an unprivileged user (is its / mode 0700?): {exc}")
    return PYTHON_IMAGE


def _ours() -> list[str]:
    import docker

    client = docker.from_env(timeout=30)
    try:
        owner = f"{OWNER_LABEL}={procfs.identity(os.getpid())}"
        return [c.name for c in client.containers.list(all=True, filters={"label": owner})]
    finally:
        client.close()


# Every fixture graded in containers, as one batch (its gradings overlap), each of its outcomes held to
# fixtures/catalog.toml, to which tests/test_fixtures.py holds the local runtime: both runtimes agree on every
# check of every fixture. Two at a time, as the timing checks of one grading must not share the machine with two
# others' checks on a 2-core machine; the start timeout allows for the machine's load, and still fails a
# startup that hangs.
BATCH_JOBS = 2
BATCH_START_TIMEOUT = 15
BATCH_TIMEOUT = 1800


@pytest.fixture(scope="module")
def graded_in_docker(app_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docker-batch")
    command = [
        sys.executable, "-m", "grader", "batch", str(SUBMISSIONS), "--out", str(out), "--runtime", "docker",
        "--app-image", app_image, "--redis", REDIS, "--redis-image", REDIS_IMAGE, "--jobs", str(BATCH_JOBS),
        "--start-timeout", str(BATCH_START_TIMEOUT),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=BATCH_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out



@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.timeout(BATCH_TIMEOUT + 60)  # the first one waits for the whole batch
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_fixture_grades_as_catalogued_in_containers(name: str, graded_in_docker: Path) -> None:
    result = json.loads((graded_in_docker / name / "result.json").read_text(encoding="utf-8"))
    assert result["status"] == "graded", result.get("error")
    assert result["environment"]["runtime"] == "docker"
    seen = {c["id"]: c for c in result["checks"]}
    wrong = {
        check_id: f"expected {want}, got {seen[check_id]['outcome']}: {seen[check_id]['message']}"
        for check_id, want in expected_outcomes(name).items()
        if seen[check_id]["outcome"] != want
    }
    assert not wrong, f"{name} ({CATALOG[name]['defect']}):\n" + "\n".join(f"  {k}: {v}" for k, v in wrong.items())


@pytest.mark.docker
def test_the_app_and_its_commands_are_confined(app_image: str, tmp_path: Path) -> None:
    root = tmp_path / "hello"
    shutil.copytree(APPS / "hello", root)
    host_server = socket.create_server(("127.0.0.1", 0))  # nothing in a container may reach it
    host_server.setblocking(False)
    port = str(host_server.getsockname()[1])
    with (
        host_server,
        start_redis(REDIS, REDIS_IMAGE) as server,
        RedisProxy(server.host, server.port) as proxy,
        open_runtime("docker", app_image) as runtime,
        activated(runtime),
    ):
        assert isinstance(runtime, DockerRuntime)
        env = runtime.prepare(root, "isolated")
        with runtime.app(AppLaunch(python=env.python, app_dir=root, target="main:app"), proxy, start_timeout=60) as app:
            start = app.start()
            assert start.ready, app.log_tail()
            _assert_confined(app.container.attrs)
            if copies_images(runtime._client):  # the image's files are mounted, not copied into the container
                assert app.container.attrs["Config"]["Image"].startswith(SKELETON_REPOSITORY + ":")
                assert {"/usr", "/etc"} <= {m["Destination"] for m in app.container.attrs["Mounts"] if not m["RW"]}
            # From inside the app's own container.
            code, output = app.container.exec_run(["python", "-c", PROBE_INSIDE, port, ENV_DIR], workdir=str(root))
            assert code == 0, output
            _assert_no_way_out(json.loads(output.decode().strip().splitlines()[-1]))
            # The probe reaches the app over its socket; the app sees each client's address.
            probe = Probe(BASE_URL)
            reply = asyncio.run(_get_and_close(probe, "/who"))
            assert reply.status == 200, reply
            redis_url = runtime.redis_env(proxy)["REDIS_URL"]
            assert reply.body == {"path": "who", "client": "127.0.1.1", "redis_url": redis_url}
            assert ":6379/" not in redis_url  # an app that ignores REDIS_URL must not find Redis at its default
            # The app swaps its socket's name for a link to a socket of the host's: the grader goes on talking to
            # the socket that answered, never to what the link names (as root, that could be the engine's).
            canary = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            canary.bind(str(tmp_path / "canary.sock"))
            canary.listen()
            canary.setblocking(False)
            swap = (f"import os; os.rename('{APP_SOCKET}', '{APP_SOCKET}.old'); "
                    f"os.symlink('{tmp_path / 'canary.sock'}', '{APP_SOCKET}')")
            code, output = app.container.exec_run(["python", "-c", swap])
            assert code == 0, output
            reply = asyncio.run(_get_and_close(Probe(BASE_URL), "/who"))
            assert reply.status == 200 and reply.body["path"] == "who", reply
            with canary, pytest.raises(BlockingIOError):
                canary.accept()  # nothing ever connected to it
        # A command of the submission's (ctx.run) in a container of its own, its Redis relayed to the proxy; it
        # writes into its own private copy of the submission, never into the grader's.
        run = runtime.runner(proxy, env.python, root)
        done = asyncio.run(run([env.python, "-c", PROBE_INSIDE, port, ENV_DIR], timeout=120))
        assert done.returncode == 0, done.output
        _assert_no_way_out(json.loads(done.output.strip().splitlines()[-1]), workspace="written")
        assert not (root / "written.txt").exists()
        mark = proxy.trace.mark()
        ping = "import os, redis; print(redis.Redis.from_url(os.environ['REDIS_URL']).ping())"
        done = asyncio.run(run([env.python, "-c", ping], timeout=120))
        assert done.returncode == 0 and done.output.strip() == "True", done.output
        assert [c.name for c in proxy.trace.since(mark)][-1] == "PING"  # through the relay and the proxy
        # A command that yields (the submission's own tests, beside the timing checks) has a tenth of the usual CPU
        # weight: cpu.shares 102 under cgroup v1, cpu.weight 4 (the engine's conversion of 102) under v2.
        weight = asyncio.run(runtime.runner(proxy, env.python, root, yields=True)(
            [env.python, "-c", CPU_WEIGHT], timeout=120))
        assert weight.output.split() in (["cpu.shares", "102"], ["cpu.weight", "4"]), weight.output
        usual = asyncio.run(run([env.python, "-c", CPU_WEIGHT], timeout=120)).output.split()
        assert usual in (["cpu.shares", "1024"], ["cpu.weight", "100"]), usual
        with pytest.raises(BlockingIOError):
            host_server.accept()  # no container ever connected
    assert _ours() == []


# The container's own CPU weight: cpu.shares under cgroup v1, cpu.weight under v2.
CPU_WEIGHT = """
import os
for path in ("/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/cpu.weight"):
    if os.path.exists(path):
        print(os.path.basename(path), open(path).read().strip())
        break
else:
    print("unknown")
"""


async def _get_and_close(probe: Probe, path: str):
    try:
        return await probe.client().get(path)
    finally:
        await probe.aclose()


def _assert_confined(attrs: dict) -> None:
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert all(not net.get("IPAddress") for net in attrs["NetworkSettings"]["Networks"].values())
    assert attrs["Config"]["User"] == "65534:65534"
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] > 0 and host["PidsLimit"] > 0 and host["NanoCpus"] > 0
    assert not any("docker.sock" in (m.get("Source") or "") for m in attrs["Mounts"])
    assert all(not key.startswith(("REDIS_GRADER", "GITHUB", "CI=")) for key in attrs["Config"]["Env"])


def _assert_no_way_out(found: dict, workspace: str = "Read-only file system") -> None:
    assert found["uid"] == 65534
    assert found["cap_eff"] == "0000000000000000"
    assert found["interfaces"] == ["lo"]  # no interface but loopback: no route anywhere
    assert found["host_server"] == "ConnectionRefusedError"  # its loopback is not the host's
    assert found["env_write"] == "Read-only file system"
    assert found["workspace_write"] == workspace


# Run in a container: whether it reaches host:port within 3 s ("connected", or why not).
REACH = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.mark.docker
def test_an_install_cannot_reach_the_redis_of_another_grading(app_image: str) -> None:
    """What a package runs at install time (the only container with a network) must not reach a grading's Redis
    container, which has no password: installs run on a bridge of their own, which the engine keeps apart from
    the default bridge the Redis containers are on. A container on the default bridge shows the test can fail."""
    with python_image_engine() as client, start_redis("docker", image=REDIS_IMAGE) as server:
        [redis_container] = client.containers.list(filters={"publish": str(server.port)})
        address = redis_container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        network = install_network(client)
        assert network == INSTALL_NETWORK and install_network(client) == network  # made once, then found

        def reach(on: str) -> str:
            output = client.containers.run(app_image, ["python3", "-c", REACH, address, "6379"], network_mode=on,
                                           remove=True)
            return output.decode().strip()

        assert reach("bridge") == "connected"
        assert reach(network) != "connected"


def test_the_grader_connects_to_the_apps_socket_never_to_what_a_link_there_names(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "app.sock"))
    server.listen()
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "app.sock")
    with server:
        fd = pinned_socket(tmp_path / "app.sock")
        try:
            (tmp_path / "app.sock").rename(tmp_path / "moved.sock")
            (tmp_path / "app.sock").symlink_to(tmp_path / "file")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(f"/proc/self/fd/{fd}")  # still the socket the descriptor was opened on
                server.accept()[0].close()
        finally:
            os.close(fd)
        for name in ("link", "file", "missing"):
            with pytest.raises(OSError):
                pinned_socket(tmp_path / name)


@pytest.mark.skipif(find_local_redis_server() is None, reason="needs a local redis-server")
def test_the_relay_and_the_forwarder_carry_redis_to_the_proxy(tmp_path: Path) -> None:
    # Both halves of a container's way to Redis, run here without a container: the relay listens on TCP and
    # pipes to a Unix socket, where the forwarder takes over to the proxy; the job's exit code comes back.
    port = free_port()
    ping = "import os, sys, redis; print(redis.Redis.from_url(os.environ['REDIS_URL']).ping()); sys.exit(3)"
    with start_redis("local") as server, RedisProxy(server.host, server.port) as proxy:
        forwarders = Forwarders().start()
        try:
            forwarders.add(tmp_path / "redis.sock", proxy.host, proxy.port)
            write_job(tmp_path, [sys.executable, "-c", ping], str(tmp_path), {"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
            done = subprocess.run(
                [sys.executable, str(RELAY_SOURCE), str(tmp_path / "redis.sock"), str(port), "--job", str(tmp_path / "job.json")],
                capture_output=True, text=True, timeout=60, check=False,
            )
        finally:
            forwarders.stop()
        assert done.returncode == 3, done.stderr
        assert done.stdout.strip() == "True"
        assert [c.name for c in proxy.trace.all()][-1] == "PING"
