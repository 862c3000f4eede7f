"""Shared test plumbing: where the fixtures are, the Docker gate, and a check that nothing outlives a run."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from grader import procfs
from grader.sandbox import MARKER_VAR
from grader.services import DEFAULT_IMAGE, OWNER_LABEL, image_present

# quiz_kit is imported by its test modules and loaded as their plugin (its fixtures): rewrite its asserts either way.
pytest.register_assert_rewrite("quiz_kit")

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "fixtures" / "submissions"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The image the Docker tests run Redis from: the product's default unless REDIS_IMAGE names another. It must
# already be on this machine: tests never pull (`../shared/ci/docker-up` builds local/redis:7 where no registry is
# reachable).
REDIS_IMAGE = os.environ.get("REDIS_IMAGE") or DEFAULT_IMAGE
# Every process this test session starts inherits the tag (unless a sandbox scrubs its environment), so a leaked
# process is still known as ours once its parent is gone.
SESSION_VAR = "REDIS_GRADER_TEST_SESSION"
SESSION_TAG = secrets.token_hex(8)


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """`proc` (started in a session of its own), its whole group killed if it is still running at the end."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_while_running(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """Polls until `ready()`; fails with `what` if `proc` ends first or after two minutes (a bound against a
    broken harness, not a measurement)."""
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline, what
        time.sleep(0.1)


def own_rubric(name: str, checks: str, *, title: str = "", sections: str = "") -> str:
    """A rubric of a test's own (the behaviour under test, not the course rubric's points, which other work
    changes): the usual grade bands, `app.starts` for 10 points, then `checks` (TOML tables) and `sections`."""
    return (f'name = "{name}"\n' + (f'title = "{title}"\n' if title else "")
            + 'docs_url = "https://textbook.example.org/redis"\n[grades]\nS = 90\nA = 80\nB = 70\nC = 0\n'
            + f'[sections]\n{sections}[checks."app.starts"]\npoints = 10\n{checks}')


def require(condition: bool, why: str) -> None:
    """Skip when something the test needs is missing on a developer's machine; in CI that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {why}", pytrace=False)
    pytest.skip(why)


# The container runtime's app image (DESIGN.md §7; built by ../shared/ci/python-image).
PYTHON_IMAGE = os.environ.get("PYTHON_IMAGE", "local/python:3.11-bookworm")


@contextlib.contextmanager
def python_image_engine() -> Iterator[Any]:
    """A docker client, once PYTHON_IMAGE is on the engine (missing: a skip, or a failure in CI)."""
    import docker

    client = docker.from_env(timeout=120)
    try:
        try:
            client.images.get(PYTHON_IMAGE)
        except docker.errors.ImageNotFound:
            require(False, f"no image {PYTHON_IMAGE} (build it with ../shared/ci/python-image)")
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def batch_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests sign stored results with a key of their own, never the user's (a batch a test starts
    inherits it)."""
    from grader.batch.integrity import KEY_VAR

    path = tmp_path_factory.mktemp("state") / "batch.key"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_VAR, str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def session_tag() -> Iterator[str]:
    """Put the session's tag in the environment every process the tests start inherits."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SESSION_VAR, SESSION_TAG)
        yield SESSION_TAG


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker engine answers."""
    from grader.services import docker_available

    require(docker_available(), "no Docker engine answers (run ../shared/ci/docker-up)")


@pytest.fixture(scope="session")
def docker_engine(engine: None) -> None:
    """A Docker engine answers and the Redis image the Docker tests run (REDIS_IMAGE) is already on it."""
    require(
        image_present(REDIS_IMAGE),
        f"the Redis image {REDIS_IMAGE!r} is not on this machine and tests never pull one "
        "(`docker pull redis:7-alpine`, or set REDIS_IMAGE to a local image; ../shared/ci/docker-up builds one)",
    )


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


def own_processes() -> set[int]:
    """Live processes that descend from this test process (the walk follows /proc parent links)."""
    table = procfs.live_processes()
    children: dict[int, list[int]] = {}
    for pid, info in table.items():
        children.setdefault(info.ppid, []).append(pid)
    found: set[int] = set()
    todo = list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _marker(pid: int) -> bytes | None:
    """The whole `\0REDIS_GRADER_RUN=<marker>\0` entry a sandboxed process carries, or None."""
    env = procfs.environ(pid)
    prefix = f"\0{MARKER_VAR}=".encode()
    at = env.find(prefix)
    return env[at : env.index(b"\0", at + 1) + 1] if at >= 0 else None


def _program(pid: int) -> bytes:
    # redis-server rewrites its command line ("/usr/bin/redis-server 127.0.0.1:6390"): read the program's name.
    return cmdline(pid).split(b"\0", 1)[0].split(b" ", 1)[0].rsplit(b"/", 1)[-1]


def grader_processes() -> set[int]:
    """The grading processes of this test session: a process that carries a grading run's marker, or a local
    Redis, and that descends from this test process or inherited the session's tag (a redis-server whose grader
    was killed). Other people's gradings on the same machine are not counted."""
    own = own_processes()
    tagged = {pid for pid in procfs.pids() if procfs.has_env_entry(pid, SESSION_VAR, SESSION_TAG)}
    return {pid for pid in (own | tagged) - {os.getpid()} if _marker(pid) is not None or _program(pid) == b"redis-server"}


def containers_by_owner() -> dict[str, str]:
    """Running containers the grader labelled (id -> owner identity); {} without a working engine."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return {c.id: c.labels.get(OWNER_LABEL, "") for c in client.containers.list(filters={"label": OWNER_LABEL})}
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no engine, or one that is broken: no containers to count
        return {}


class LeakWatch:
    """What one test leaves running: processes that descend from the test process, inherited the session's tag,
    or carry a grading marker seen on one of those; containers labelled with the identity of the test process or
    of one of its descendants. A watcher thread samples the process tree while the test runs, because a
    `grader check` child that is killed takes the knowledge of its markers and identity with it."""

    INTERVAL = 0.5  # often enough to see a `grader check` child (it lives for seconds), rarely enough to cost nothing

    def __init__(self) -> None:
        self.markers: set[bytes] = set()
        self.identities: set[str] = {procfs.identity(os.getpid()) or ""}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_until_stopped, name="leak-watch", daemon=True)
        self.before_procs = self.processes()
        self.before_containers = set(self.containers())
        self._sampler.start()

    def _sample(self) -> set[int]:
        own = own_processes()
        for pid in own:
            marker = _marker(pid)
            if marker is not None:
                self.markers.add(marker)
            identity = procfs.identity(pid)
            if identity is not None:
                self.identities.add(identity)
        return own

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self._sample()

    def processes(self) -> set[int]:
        own = self._sample()
        tag = f"\0{SESSION_VAR}={SESSION_TAG}\0".encode()
        others = set()
        for pid in procfs.pids():
            env = procfs.environ(pid)
            if tag in env or any(marker in env for marker in self.markers):
                others.add(pid)
        return {pid for pid in own | others if pid != os.getpid() and alive(pid)}

    def containers(self) -> set[str]:
        self._sample()
        return {cid for cid, owner in containers_by_owner().items() if owner in self.identities}

    def finish(self) -> tuple[set[int], set[str]]:
        """Stop watching; (processes, containers) started during the watch and still running."""
        self._stop.set()
        self._sampler.join()
        return self.processes() - self.before_procs, self.containers() - self.before_containers


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fails the test when a process or container it started is still there afterwards (only its own: other
    gradings on the same machine may come and go meanwhile)."""
    watch = LeakWatch()
    yield
    left_procs, left_containers = watch.finish()
    assert not left_procs, f"processes left running: {sorted(left_procs)}"
    assert not left_containers, f"containers left running: {sorted(left_containers)}"
