"""A startup that hangs is judged by what it does, not waited out to the start timeout: real uvicorn apps from
tests/apps/ and the startup-hangs fixture, on both runtimes. Every start here gets a start timeout far longer
than the quiet period, so a failure that names the quiet period can only come from the hang detector."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PYTHON_IMAGE, REDIS_IMAGE, SUBMISSIONS, python_image_engine, require

from grader import procfs
from grader.app import QUIET_PERIOD_S, AppLaunch, AppStart, RunningApp, start_failure
from grader.proxy import RedisProxy
from grader.runtime import AppHandle, activated, open_runtime
from grader.sandbox import processes_with_marker
from grader.services import find_local_redis_server, start_redis

APPS = Path(__file__).resolve().parent / "apps"
PY = sys.executable  # the test environment has fastapi and uvicorn
REDIS = "local" if find_local_redis_server() else "docker"
NEVER = 300.0  # a start timeout no start here reaches: what ends a start is the app or the hang detector
HUNG = f"its startup has made no progress for {QUIET_PERIOD_S:g} s (no processor time used, nothing logged)"


def _launch(name: str, env: dict[str, str] | None = None) -> AppLaunch:
    return AppLaunch(python=PY, app_dir=APPS / name, target="main:app", env=env or {})


def _start_locally(launch: AppLaunch, **options: float) -> tuple[AppStart, str, str | None]:
    """The start, the app's log and its likely cause; afterwards nothing of the app is left running."""
    with RunningApp(launch, start_timeout=NEVER, **options) as app:
        start = app.start()
        log, cause = app.log_tail(), app.likely_cause()
    assert app.process is not None and processes_with_marker(app.process.marker) == []
    return start, log, cause


# --------------------------------------------------------------------------------------------- local runtime


def test_a_startup_that_waits_forever_is_judged_hung() -> None:
    start, log, cause = _start_locally(_launch("hang_startup"))
    assert not start.ready
    assert start.failure == f'{HUNG} after "lifespan: waiting forever"'
    assert "lifespan: waiting forever" in log
    assert cause == "startup never finished: the app's startup/lifespan code did not return"


def test_a_startup_that_sleeps_a_few_seconds_still_starts() -> None:
    # A deliberate sleep uses no processor time and logs nothing either: only its length, shorter than the quiet
    # period, tells it from a hang.
    start, log, _ = _start_locally(_launch("sleepy_startup", {"STARTUP_SLEEP_S": "3"}))
    assert start.ready, log
    assert "lifespan: awake" in log


def test_a_sleep_longer_than_the_quiet_period_is_judged_hung() -> None:
    # The other side of the trade-off: the rule is the quiet period, whatever the app is quietly waiting for.
    start, log, _ = _start_locally(_launch("sleepy_startup", {"STARTUP_SLEEP_S": "600"}), quiet_s=2)
    assert start.failure == (
        'its startup has made no progress for 2 s (no processor time used, nothing logged) after '
        '"lifespan: sleeping before serving"'
    ), log


def test_a_startup_that_keeps_logging_is_waited_out_to_the_start_timeout() -> None:
    # It never finishes, but its log grows: that is progress, as far as the grader can tell.
    with RunningApp(_launch("hang_startup_chatty"), start_timeout=6, quiet_s=2) as app:
        start = app.start()
        assert start.failure == "did not answer HTTP within 6 s", app.log_tail()
    assert app.process is not None and processes_with_marker(app.process.marker) == []


def test_a_child_that_works_while_the_app_waits_for_it_is_progress() -> None:
    # The app itself uses no processor time while it awaits its child, which computes silently for longer than
    # the quiet period: the process tree works, so the startup is not hung.
    env = {"STARTUP_CHILD_BUSY_S": "5", "STARTUP_SLEEP_S": "0"}
    start, log, _ = _start_locally(_launch("sleepy_startup", env), quiet_s=2)
    assert start.ready, f"{start.failure}\n{log}"
    assert "lifespan: child done" in log


def test_the_startup_hangs_fixture_fails_app_starts_through_the_detector(no_leftovers: None) -> None:
    from grader.runner import GradeOptions, grade

    result = grade(SUBMISSIONS / "startup-hangs", GradeOptions(env="current", redis="local", start_timeout=NEVER))
    starts = next(c for c in result["checks"] if c["id"] == "app.starts")
    assert starts["outcome"] == "failed"
    assert starts["message"] == (
        f'the app did not start: {HUNG} after "Waiting for application startup." - likely cause: startup never '
        "finished: the app's startup/lifespan code did not return"
    )
    assert any("Waiting for application startup." in line for line in starts["evidence"]["log_tail"])


def test_the_failure_quotes_the_last_line_logged() -> None:
    assert start_failure("hung", None, 30, 10, "") == (
        "its startup has made no progress for 10 s (no processor time used, nothing logged) before logging anything"
    )
    said = start_failure("hung", None, 30, 10, "INFO:     Started server process [7]\nWARNING:  " + "x" * 300 + "\n\n")
    assert said.endswith(' after "' + "x" * 117 + '..."')
    assert start_failure("timeout", None, 30, 10, "log") == "did not answer HTTP within 30 s"
    assert start_failure("exited", "exited with code 3", 30, 10, "log") == "exited with code 3 before answering"


def test_procfs_reads_processor_time() -> None:
    mine = procfs.stat(os.getpid())
    assert mine is not None and mine.cpu_ticks > 0  # this interpreter has imported pytest: it has worked
    while (now := procfs.stat(os.getpid())) is not None and now.cpu_ticks == mine.cpu_ticks:
        pass  # working makes it grow
    # A cgroup whose path does not name the container asked for is never read: that pid is someone else here.
    assert procfs.cgroup_cpu_ns(os.getpid(), "no-such-container-id") is None


# --------------------------------------------------------------------------------------------- docker runtime


@pytest.fixture(scope="module")
def app_image(docker_engine: None) -> str:
    with python_image_engine() as client:
        # The docker runtime reads a container's processor time from its cgroup on this machine; an engine in a VM
        # keeps it out of reach, and there a hang is waited out to the start timeout.
        container = client.containers.run(PYTHON_IMAGE, ["sleep", "60"], detach=True, network_mode="none")
        try:
            container.reload()
            readable = procfs.cgroup_cpu_ns(int(container.attrs["State"]["Pid"]), container.id) is not None
        finally:
            container.remove(force=True)
        require(readable, "this machine cannot read the containers' cgroups (is the engine in a VM?)")
    return PYTHON_IMAGE


@contextlib.contextmanager
def _in_docker(app_image: str, tmp_path: Path, name: str, env: dict[str, str]) -> Iterator[AppHandle]:
    """The app `name` of tests/apps/, not started yet, in a container of the docker runtime."""
    root = tmp_path / name
    shutil.copytree(APPS / name, root)
    with (
        start_redis(REDIS, REDIS_IMAGE) as server,
        RedisProxy(server.host, server.port) as proxy,
        open_runtime("docker", app_image) as runtime,
        activated(runtime),
    ):
        python = runtime.prepare(root, "isolated").python
        with runtime.app(AppLaunch(python, root, "main:app", env), proxy, start_timeout=NEVER) as app:
            yield app


@pytest.mark.docker
def test_in_a_container_a_startup_that_waits_forever_is_judged_hung(app_image: str, tmp_path: Path) -> None:
    with _in_docker(app_image, tmp_path, "hang_startup", {}) as app:
        start = app.start()
        assert not start.ready
        assert start.failure == f'{HUNG} after "lifespan: waiting forever"'
        assert app.likely_cause() == "startup never finished: the app's startup/lifespan code did not return"


@pytest.mark.docker
def test_in_a_container_a_startup_that_sleeps_a_few_seconds_still_starts(app_image: str, tmp_path: Path) -> None:
    with _in_docker(app_image, tmp_path, "sleepy_startup", {"STARTUP_SLEEP_S": "3"}) as app:
        start = app.start()
        assert start.ready, f"{start.failure}\n{app.log_tail()}"
        assert "lifespan: awake" in app.log_tail()
