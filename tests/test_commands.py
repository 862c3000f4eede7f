"""grader.commands: a tool run on what a submission brought (git) stops at its deadline or at Ctrl-C, with
everything it started, and a terminal's Ctrl-C never reaches it straight away."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import alive

from grader.commands import Interrupted, run_command

ENV = {"PATH": "/usr/bin:/bin"}
# A command that starts a helper in the background (as git starts git-remote-http), says its pid, and waits.
WITH_HELPER = ["sh", "-c", "sleep 300 & echo $! > helper.pid; sleep 300"]


def _said_its_pid(tmp_path: Path) -> bool:
    path = tmp_path / "helper.pid"
    return path.exists() and path.read_text().strip() != ""


def _helper(tmp_path: Path) -> int:
    assert _said_its_pid(tmp_path)
    return int((tmp_path / "helper.pid").read_text())


def _dies(pid: int) -> bool:
    """Whether `pid` is gone (or a zombie) within a while: a SIGKILL takes effect when the process next runs."""
    for _ in range(1000):
        if not alive(pid):
            return True
        time.sleep(0.01)
    return False


def test_the_output_and_exit_code_come_back() -> None:
    done = run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=60, env=ENV)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_it_runs_in_a_session_of_its_own() -> None:
    done = run_command(["sh", "-c", "cat /proc/$$/stat"], timeout=60, env=ENV)
    fields = done.stdout[done.stdout.rfind(")") + 2:].split()
    assert int(fields[3]) != os.getsid(0)  # a terminal's Ctrl-C goes to the grader's session, not to it


def test_at_its_deadline_it_is_killed_with_what_it_started(tmp_path: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run_command(WITH_HELPER, timeout=3, env=ENV, cwd=tmp_path)
    helper = _helper(tmp_path)
    assert _dies(helper)


def test_stopping_interrupts_it_and_kills_what_it_started(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        run_command(WITH_HELPER, timeout=300, env=ENV, cwd=tmp_path, stopped=lambda: _said_its_pid(tmp_path))
    assert _dies(_helper(tmp_path))
