"""The batch's fork server (grader/batch/forkserver.py): a child forked from it runs `grader` as a child started
afresh would, with what it is given and nothing else; a server that ends costs the batch its speed, never a
submission's row."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT, SUBMISSIONS, cmdline

from grader import procfs
from grader.batch import BatchOptions, SubmissionDir, supervisor
from grader.batch.forkserver import SWITCH_VAR, ForkedChild, ForkServer, ServerGone

APPS = ROOT / "tests" / "apps"


@pytest.fixture
def server() -> Iterator[ForkServer]:
    forks = ForkServer(supervisor._child_env(None))
    assert forks.start(), "the fork server did not start"
    try:
        yield forks
    finally:
        forks.close()


def _run(forks: ForkServer, argv: list[str], env: dict[str, str] | None = None) -> tuple[ForkedChild, str, bytes]:
    """Fork a child running `grader <argv>`; its exit code, its output and what it wrote to its result pipe."""
    output_read, output_write = os.pipe()
    result_read, result_write = os.pipe()
    try:
        child = forks.spawn(argv, env or supervisor._child_env("token"), output_write, result_write)
    finally:
        os.close(output_write)
        os.close(result_write)
    with os.fdopen(output_read, "rb") as output, os.fdopen(result_read, "rb") as result:
        text = output.read().decode()
        data = result.read()
    child.wait(timeout=60)
    return child, text, data


def test_a_forked_child_runs_the_grader_and_its_exit_code_comes_back(server: ForkServer) -> None:
    child, text, _ = _run(server, ["--version"])
    assert child.returncode == 0 and "redis-grader" in text
    child, text, _ = _run(server, ["check", "/no/such/submission"])
    assert child.returncode == 2 and text.startswith("grader: error:"), text


@pytest.fixture
def hanging(tmp_path: Path) -> Path:
    """A submission whose app never finishes starting and keeps saying so: a child grading it stays put."""
    sub = tmp_path / "hang"
    sub.mkdir()
    shutil.copy(APPS / "hang_startup_chatty" / "main.py", sub / "main.py")
    return sub


@contextlib.contextmanager
def _blocked_child(forks: ForkServer, sub: Path) -> Iterator[tuple[ForkedChild, int, int]]:
    """A child grading `hanging` (it waits for the app until stopped: its start timeout is long), with the read
    ends of its output and result pipes; stopped as the batch stops one (SIGINT to its session) at the end."""
    output_read, output_write = os.pipe()
    result_read, result_write = os.pipe()
    try:
        child = forks.spawn(["check", str(sub), "--runtime", "local", "--env", "current", "--redis", "local",
                             "--start-timeout", "300", "--only", "cache.populates"],
                            supervisor._child_env("token"), output_write, result_write)
    finally:
        os.close(output_write)
        os.close(result_write)
    try:
        yield child, output_read, result_read
    finally:
        _release(child)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=60)
        supervisor.sweep("token")  # an app or Redis a killed child left
        os.close(output_read)
        os.close(result_read)


def _release(child: ForkedChild) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGINT)


def _app_started(child: ForkedChild) -> bool:
    return any(b"uvicorn" in cmdline(pid) and _descends(pid, child.pid) for pid in procfs.pids())


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        info = procfs.stat(pid)
        if info is None:
            return False
        if info.ppid == ancestor:
            return True
        pid = info.ppid
    return False


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_forked_child_has_its_own_session_its_pipes_and_nothing_else(server: ForkServer, hanging: Path,
                                                                      no_leftovers: None) -> None:
    with _blocked_child(server, hanging) as (child, output_read, result_read):
        _wait_for(lambda: _app_started(child), "the child did not start the app")
        assert server._process is not None
        channel_fd = cmdline(server._process.pid).split(b"\0")[3].decode()  # python -m grader.batch.forks <fd> ...
        channel = os.readlink(f"/proc/{server._process.pid}/fd/{channel_fd}")
        info = procfs.stat(child.pid)
        assert info is not None and info.sid == child.pid and info.pgid == child.pid
        fds = {int(fd): os.readlink(f"/proc/{child.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{child.pid}/fd")}
        assert fds[0] == os.devnull and fds[1] == fds[2] == f"pipe:[{os.fstat(output_read).st_ino}]", fds
        assert fds[3] == f"pipe:[{os.fstat(result_read).st_ino}]", fds
        assert channel.startswith("socket:") and channel not in fds.values(), fds  # not the server's channel
        _release(child)
        assert child.wait(timeout=60) not in (None, 0)


def test_a_killed_child_reports_the_signal(server: ForkServer, hanging: Path, no_leftovers: None) -> None:
    with _blocked_child(server, hanging) as (child, _, _):
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.2)
        assert child.poll() is None
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL


def test_a_child_stopped_the_moment_its_pid_is_known_stops(server: ForkServer, hanging: Path,
                                                           no_leftovers: None) -> None:
    """Its session and SIGINT handler are in place before spawn() returns: a SIGINT to its session at once (a
    batch timing out, Ctrl-C) is neither lost (no such session yet) nor ignored (the server's disposition)."""
    for _ in range(5):
        with _blocked_child(server, hanging) as (child, _, _):
            os.killpg(child.pid, signal.SIGINT)
            assert child.wait(timeout=60) != 0


def test_a_server_that_ended_is_said_so_and_its_orphans_count_as_killed(hanging: Path, no_leftovers: None) -> None:
    forks = ForkServer(supervisor._child_env(None))
    assert forks.start()
    try:
        with _blocked_child(forks, hanging) as (child, _, _):
            assert forks._process is not None
            forks._process.kill()  # the server, not its child
            forks._process.wait()
            with pytest.raises(ServerGone):
                forks.spawn(["--version"], supervisor._child_env("token"), 1, 1)
            _release(child)  # the orphan stops as asked...
            assert child.wait(timeout=30) == -signal.SIGKILL  # ...but its code is lost with the server
    finally:
        forks.close()


def test_switched_off_there_is_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SWITCH_VAR, "0")
    assert not ForkServer(supervisor._child_env(None)).start()


def test_the_batch_grades_on_when_its_fork_server_ends(tmp_path: Path, no_leftovers: None) -> None:
    """The fork server killed between two submissions: the second is graded by a child started afresh."""
    subs = tmp_path / "class"
    for name in ("first", "second"):
        shutil.copytree(SUBMISSIONS / "import-error", subs / name)
    grader = supervisor.Grader(BatchOptions(out=tmp_path / "results", redis="local", runtime="local"))
    try:
        first = grader.grade(SubmissionDir("first", subs / "first"))
        assert grader._forks is not None and grader._forks._process is not None
        grader._forks._process.kill()
        grader._forks._process.wait()
        threading.Event().wait(0.2)  # its channel's end reaches the reader
        second = grader.grade(SubmissionDir("second", subs / "second"))
    finally:
        grader.close()
    assert first is not None and second is not None
    assert first["status"] == second["status"] == "graded", (first, second)
    assert first["grade"] == second["grade"] == "C"
