"""Shared test plumbing: where the fixtures are, the Docker gate, and a check that nothing outlives a run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader import procfs
from grader.sandbox import MARKER_VAR

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "fixtures" / "submissions"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REDIS_IMAGE = os.environ.get("REDIS_IMAGE", "local/redis:7")


def require(condition: bool, why: str) -> None:
    """Skip when something the test needs is missing on a developer's machine; in CI that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session", autouse=True)
def batch_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests sign stored results with a key of their own, never the user's (a batch a test starts
    inherits it)."""
    from grader.batch.integrity import KEY_VAR

    path = tmp_path_factory.mktemp("state") / "batch.key"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_VAR, str(path))
        yield path


@pytest.fixture(scope="session")
def docker_engine() -> None:
    from grader.services import docker_available

    require(docker_available(), "no Docker engine answers (run ../shared/ci/docker-up)")


def alive(pid: int) -> bool:
    """Running or stopped, not a zombie (a zombie is dead, waiting for its parent to reap it)."""
    info = procfs.stat(pid)
    return info is not None and info.alive


def cmdline(pid: int) -> bytes:
    """The process's command line, NUL-separated; b"" when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def grader_processes() -> set[int]:
    """Processes started by a grading run (they carry its marker in their environment) or a local Redis."""
    found = set()
    for pid in procfs.pids():
        if pid == os.getpid():
            continue
        # redis-server rewrites its command line ("/usr/bin/redis-server 127.0.0.1:6390"): read the program's name.
        program = cmdline(pid).split(b"\0", 1)[0].split(b" ", 1)[0].rsplit(b"/", 1)[-1]
        if f"\0{MARKER_VAR}=".encode() in procfs.environ(pid) or program == b"redis-server":
            found.add(pid)
    return found


def grader_containers() -> set[str]:
    try:
        import docker

        client = docker.from_env(timeout=5)
        return {c.id for c in client.containers.list()}
    except Exception:  # noqa: BLE001 - no engine, or one that is broken: no containers to count
        return set()


@pytest.fixture
def no_leftovers():
    """Fails the test when a process or container started during it is still there afterwards."""
    before_procs, before_containers = grader_processes(), grader_containers()
    yield
    left_procs = grader_processes() - before_procs
    left_containers = grader_containers() - before_containers
    assert not left_procs, f"processes left running: {sorted(left_procs)}"
    assert not left_containers, f"containers left running: {sorted(left_containers)}"
