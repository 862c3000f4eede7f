"""grader.sandbox: scrubbed environment, limits, bounded logs, and nothing outlives stop(). Real processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import alive

from grader.errors import GraderError
from grader.sandbox import (
    CPU_SECONDS_LIMIT,
    FILE_SIZE_LIMIT,
    MARKER_VAR,
    PROCESS_LIMIT,
    YIELDING_NICE,
    CompletedRun,
    SandboxedProcess,
    processes_with_marker,
    run_sandboxed,
    sandbox_env,
)
from grader.text import LOG_LINE_WIDTH

APPS = Path(__file__).resolve().parent / "apps"
PY = sys.executable


def _run(*args, **kwargs) -> CompletedRun:  # type: ignore[no-untyped-def]
    return asyncio.run(run_sandboxed(*args, **kwargs))


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------- environment


def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "do-not-leak")
    monkeypatch.setenv("PYTHONPATH", "/harness/packages")
    monkeypatch.setenv("VIRTUAL_ENV", "/harness/venv")
    monkeypatch.delenv("LC_ALL", raising=False)
    script = "import json, os; print(json.dumps({'env': dict(os.environ), 'home_exists': os.path.isdir(os.environ['HOME'])}))"
    run = _run([PY, "-c", script], tmp_path, {"REDIS_URL": "redis://127.0.0.1:1/0"}, timeout=60)
    assert run.returncode == 0, run.output
    seen = json.loads(run.output)
    env = seen["env"]
    assert set(env) == {
        "PATH", "LANG", "HOME", "TMPDIR", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "REDIS_URL", MARKER_VAR,
    }  # fmt: skip
    assert env["PATH"] == os.environ["PATH"]
    assert env["PYTHONUNBUFFERED"] == env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert len(env[MARKER_VAR]) >= 16
    assert seen["home_exists"]
    assert env["HOME"] != os.environ.get("HOME")
    assert not Path(env["HOME"]).exists()  # the fresh HOME is removed with the run


def test_temporary_files_go_with_the_run_even_when_it_is_killed(tmp_path: Path) -> None:
    """A command's temp folder is its home: what it leaves there (a killed command cleans up nothing) is
    removed with the run, never left in the machine's /tmp."""
    script = ("import os, tempfile, time; path = tempfile.mkdtemp(prefix='left-'); "
              "print(path, os.environ['HOME'], flush=True); time.sleep(60)")
    process = SandboxedProcess([PY, "-c", script], cwd=tmp_path)
    process.start()
    try:
        _wait_for(lambda: "left-" in process.output())
        left, home = (Path(word) for word in process.output().split()[:2])
        assert left.is_dir() and left.parent == home
    finally:
        process.stop(grace=0.5)
    assert not left.exists()


def test_lc_all_passes_through_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    assert sandbox_env({}, "/tmp/h", "m")["LC_ALL"] == "C.UTF-8"


def test_the_marker_cannot_be_overridden() -> None:
    env = sandbox_env({MARKER_VAR: "mine", "HOME": "/elsewhere"}, "/tmp/h", "token")
    assert env[MARKER_VAR] == "token"
    assert env["HOME"] == "/elsewhere"  # the caller may choose HOME, not the marker


def test_resource_limits_are_set(tmp_path: Path) -> None:
    script = (
        "import resource as r, json; "
        "print(json.dumps([r.getrlimit(r.RLIMIT_CORE), r.getrlimit(r.RLIMIT_NOFILE), r.getrlimit(r.RLIMIT_AS)]))"
    )
    run = _run([PY, "-c", script], tmp_path, timeout=60)
    core, nofile, address_space = json.loads(run.output)
    assert core == [0, 0]
    assert nofile[0] <= 4096
    assert 0 < address_space[0] <= 4 * 1024**3


PRIORITY = (
    "import os; print(os.getpriority(os.PRIO_PROCESS, 0)); "
    "print(open('/proc/self/autogroup').read().split()[-1] if os.path.exists('/proc/self/autogroup') else 'none')"
)


def test_a_command_that_yields_runs_at_a_low_priority(tmp_path: Path) -> None:
    usual = _run([PY, "-c", PRIORITY], tmp_path, timeout=60).output.split()
    low = _run([PY, "-c", PRIORITY], tmp_path, timeout=60, yields=True).output.split()
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert usual[0] == str(mine) and low[0] == str(min(19, mine + YIELDING_NICE)), (usual, low)
    # Its session's autogroup too, where the kernel has them (sessions compete as groups there).
    assert low[1] in (str(YIELDING_NICE), "none"), low
    assert usual[1] != str(YIELDING_NICE), usual


def test_a_sandboxed_process_cannot_write_a_file_larger_than_the_cap(tmp_path: Path) -> None:
    # Sparse writes: the file reaches the cap's size without the disk holding it. With SIGXFSZ ignored, a
    # write past the cap fails with EFBIG instead of killing the process, so it can say what happened.
    script = (
        "import errno, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "cap = int(sys.argv[1])\n"
        "with open('big', 'wb', buffering=0) as f:\n"
        "    f.seek(cap - 1); f.write(b'x')\n"
        "    try:\n"
        "        f.write(b'y')\n"
        "    except OSError as exc:\n"
        "        print('refused', errno.errorcode[exc.errno])\n"
        "    else:\n"
        "        print('written')\n"
    )
    run = _run([PY, "-c", script, str(FILE_SIZE_LIMIT)], tmp_path, timeout=60)
    assert run.returncode == 0, run.output
    assert run.output.strip() == "refused EFBIG"
    assert (tmp_path / "big").stat().st_size == FILE_SIZE_LIMIT


def test_cpu_time_and_processes_are_capped(tmp_path: Path) -> None:
    script = "import resource as r, json; print(json.dumps([r.getrlimit(r.RLIMIT_CPU), r.getrlimit(r.RLIMIT_NPROC)]))"
    run = _run([PY, "-c", script], tmp_path, timeout=60)
    cpu, nproc = json.loads(run.output)
    assert 0 < cpu[0] <= CPU_SECONDS_LIMIT
    if os.getuid() != 0:  # root is not held by RLIMIT_NPROC, so it is not set there
        assert 0 < nproc[0] <= PROCESS_LIMIT


def test_stdin_is_empty(tmp_path: Path) -> None:
    run = _run([PY, "-c", "import sys; print(repr(sys.stdin.read()))"], tmp_path, timeout=60)
    assert run.output.strip() == "''"


# --------------------------------------------------------------------------------------------- output


def test_output_and_exit_code(tmp_path: Path) -> None:
    script = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    run = _run([PY, "-c", script], tmp_path, timeout=60)
    assert run.returncode == 3
    assert not run.timed_out
    assert "to stdout" in run.output
    assert "to stderr" in run.output
    assert not run.truncated


def test_log_cap_keeps_the_tail(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(20000): print('line', i)\nprint('THE END')"
    run = _run([PY, "-c", script], tmp_path, timeout=60, log_cap=4096)
    assert len(run.output.encode()) <= 4096
    assert run.truncated
    assert run.output.rstrip().endswith("THE END")
    assert "line 0\n" not in run.output


def test_log_tail_lines(tmp_path: Path) -> None:
    with SandboxedProcess([PY, "-c", "for i in range(100): print('n', i)"], tmp_path) as proc:
        assert proc.wait(60) == 0
    assert proc.log_tail(3).splitlines() == ["n 97", "n 98", "n 99"]


def test_log_tail_cuts_a_long_line(tmp_path: Path) -> None:
    """An app that logs whole responses on one line: every check's error would carry them (the reports' size)."""
    script = "print('A' * 10000); print('short')"
    with SandboxedProcess([PY, "-c", script], tmp_path) as proc:
        assert proc.wait(60) == 0
    long, short = proc.log_tail(2).splitlines()
    assert long == "A" * LOG_LINE_WIDTH + f"… ({10000 - LOG_LINE_WIDTH} more characters)"
    assert short == "short"
    assert "A" * 10000 in proc.output()  # what a check reads in full is not cut


def test_missing_program_is_reported_not_raised(tmp_path: Path) -> None:
    run = _run(["redis-grader-no-such-program"], tmp_path, timeout=60)
    assert run.returncode == 127
    assert "cannot run 'redis-grader-no-such-program'" in run.output


def test_missing_working_directory_is_a_grader_error(tmp_path: Path) -> None:
    with pytest.raises(GraderError, match="does not exist"):
        _run([PY, "-c", "pass"], tmp_path / "nope", timeout=10)


# --------------------------------------------------------------------------------------------- stopping


def test_run_sandboxed_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    run = _run([PY, "-c", "import time; print('started', flush=True); time.sleep(600)"], tmp_path, timeout=1)
    assert time.monotonic() - started >= 1  # a lower bound only: the timeout was honoured, not skipped
    assert run.timed_out
    assert run.returncode is None


def test_cancelling_an_async_run_stops_its_process(tmp_path: Path) -> None:
    # A check cut off by its timeout, or Ctrl-C, cancels the run: the process must go at once, and no worker
    # thread may stay behind waiting for it (asyncio.run would wait for that thread before returning).
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"

    async def cancel_once_running() -> int:
        task = asyncio.create_task(run_sandboxed([PY, "-c", script], tmp_path, timeout=600))
        while not (pid_file.exists() and pid_file.read_text()):
            assert not task.done(), task.result()
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return int(pid_file.read_text())

    pid = asyncio.run(cancel_once_running())
    assert not alive(pid)


def test_a_run_reports_its_exit_code_and_output(tmp_path: Path) -> None:
    run = asyncio.run(run_sandboxed([PY, "-c", "print('hello'); raise SystemExit(3)"], tmp_path, timeout=60))
    assert (run.returncode, run.timed_out, run.output.strip()) == (3, False, "hello")


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    proc = SandboxedProcess([PY, "-c", script], tmp_path).start()
    try:
        _wait_for(lambda: "ready" in proc.output())
        assert proc.poll() is None
    finally:
        proc.stop(grace=0.5)
    assert proc.poll() == -9
    assert proc.pid is not None and not alive(proc.pid)
    assert processes_with_marker(proc.marker) == []


def test_a_double_forked_grandchild_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    proc = SandboxedProcess([PY, str(APPS / "double_fork.py"), str(pid_file)], tmp_path).start()
    try:
        _wait_for(pid_file.exists)
        grandchild = int(pid_file.read_text())
        assert alive(grandchild)
        # It escaped the process group and the session: only the marker still ties it to the run.
        stat = Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[2]) != proc.pid and int(stat[3]) != proc.pid
        assert grandchild in processes_with_marker(proc.marker)
    finally:
        proc.stop(grace=0.5)
    assert not alive(grandchild)
    assert processes_with_marker(proc.marker) == []


def test_background_children_do_not_outlive_a_run(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(child.pid, flush=True)\n"
    )
    run = _run([PY, "-c", script], tmp_path, timeout=60)
    assert run.returncode == 0
    assert not alive(int(run.output.split()[0]))


def test_stop_is_idempotent_and_safe_before_start(tmp_path: Path) -> None:
    never_started = SandboxedProcess([PY, "-c", "pass"], tmp_path)
    never_started.stop()
    assert never_started.poll() is None
    proc = SandboxedProcess([PY, "-c", "print('done')"], tmp_path).start()
    assert proc.wait(60) == 0
    proc.stop()
    proc.stop()
    assert proc.poll() == 0
    assert "done" in proc.log_tail()
