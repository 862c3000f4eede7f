"""What a grader killed with SIGKILL (it cannot clean up) leaves behind: its app and local redis-server die
with it, and its Redis container is removed by the next grader (or by the batch that killed it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import REDIS_IMAGE, ROOT, SUBMISSIONS, alive, cmdline, grader_processes

from grader import procfs
from grader.services import OWNER_LABEL, remove_orphaned_containers

BOUND_S = 60  # a bound against a broken harness, not a measurement


def _grader(*args: str) -> subprocess.Popen[str]:
    # startup-hangs: the app never answers, so the run waits (up to --start-timeout) with its app and Redis up.
    return subprocess.Popen(
        [sys.executable, "-m", "grader.cli", "check", str(SUBMISSIONS / "startup-hangs"), "--env", "current",
         "--start-timeout", "300", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )


def _wait_until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)  # the grader alone: what it started must die of that
    proc.wait()


def test_an_identity_names_a_live_process_and_not_a_dead_one() -> None:
    me = procfs.identity(os.getpid())
    assert me is not None and me.startswith(f"{socket.gethostname()}/") and f"/{os.getpid()}/" in me
    assert not procfs.identity_gone(me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    label = procfs.identity(child.pid)
    child.wait()
    assert label is not None and procfs.identity_gone(label)


@pytest.mark.parametrize("label", ["", "garbage", "other-host/boot/1/1", f"{socket.gethostname()}/other-boot/1/1"])
def test_a_container_of_another_machine_or_an_odd_label_is_never_ours(label: str) -> None:
    assert not procfs.identity_gone(label)


@pytest.mark.slow
def test_a_killed_grader_takes_its_app_and_local_redis_with_it(no_leftovers: None) -> None:
    before = grader_processes()
    proc = _grader("--redis", "local")
    try:
        # The grader's own: its children (other grading runs may share the machine and start theirs meanwhile).
        def mine() -> set[int]:
            return {pid for pid in grader_processes() - before if (info := procfs.stat(pid)) and info.ppid == proc.pid}

        def started() -> bool:
            commands = [cmdline(pid) for pid in mine()]
            return any(b"uvicorn" in c for c in commands) and any(b"redis-server" in c for c in commands)

        _wait_until(started, "the app and its redis-server never started")
        children = mine()
        _kill(proc)
        _wait_until(lambda: not [pid for pid in children if alive(pid)],
                    "the app or redis-server outlived the killed grader")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
@pytest.mark.docker
def test_the_container_of_a_killed_grader_is_removed_by_the_next(docker_engine: None, no_leftovers: None) -> None:
    import docker

    client = docker.from_env(timeout=10)
    proc = _grader("--redis", "docker", "--redis-image", REDIS_IMAGE)
    try:
        def mine() -> list[str]:
            return [c.id for c in client.containers.list(all=True, filters={"label": OWNER_LABEL})
                    if c.labels[OWNER_LABEL] == procfs.identity(proc.pid)]

        _wait_until(mine, "the grader's container never started")
        container_id = mine()[0]
        assert container_id not in remove_orphaned_containers()  # its grader is alive: not an orphan
        _kill(proc)
        assert container_id in [c.id for c in client.containers.list(all=True)]  # nobody removed it
        assert container_id in remove_orphaned_containers()
        assert container_id not in [c.id for c in client.containers.list(all=True)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        client.close()
