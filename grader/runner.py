"""Grades one submission: workspace -> environment -> Redis -> proxy -> app -> probe -> checks -> result.

The runner decides `app.starts` itself (it is the gate: when the app never answers, every other check is
skipped) and runs every other check through the plugin API, knowing nothing of what a check does inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import threading
import time
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import rubric as rubrics
from grader.app import AppLaunch, AppStart, student_frame
from grader.checking import Check, load_checks
from grader.checkrun import check_selection, in_rubric, run_checks, selected
from grader.errors import GraderError
from grader.outcome import CheckOutcome, failed, passed, skipped
from grader.proxy import RedisProxy
from grader.quiz import add_quiz, submission_quiz
from grader.quiz import load_settings as load_quiz_settings
from grader.registry import Registry
from grader.result import Submission, failed_to_grade, graded
from grader.runtime import DEFAULT_APP_IMAGE, AppHandle, Runtime, activated, open_runtime
from grader.services import RedisServer, start_redis, start_redis_in_background
from grader.static import StaticFacts, analyze
from grader.text import valid_unicode
from grader.without_app import judge_without_app
from grader.workspace import Workspace, open_workspace

log = logging.getLogger(__name__)

APP_STARTS = "app.starts"
# Lanes of the background (grader/schedule.py): the submission's suite (one run, which quality.tests and
# quality.coverage share) starts beside the linter rather than after it.
BACKGROUND_LANES = 2
IMPORT_HINT = (
    "Start the app yourself from the folder it runs from (cd backend && uvicorn app.main:app) and fix the import "
    "it names: the module path, a missing __init__.py, or a package missing from requirements.txt."
)


@dataclass(frozen=True)
class GradeOptions:
    rubric: str = "redis-module"
    redis: str = "auto"  # auto | docker | local
    redis_image: str = "redis:7-alpine"
    env: str = "isolated"  # isolated | current
    app: str | None = None  # module:attr, overrides detection
    app_dir: str | None = None
    start_timeout: float = 30.0
    request_timeout: float = 10.0
    docs_url: str | None = None
    only: tuple[str, ...] = field(default=())  # check ids or glob patterns ("cache.*"); empty = all
    runtime: str = "local"  # local | docker: where the submission's code runs (grader/runtime/)
    app_image: str = DEFAULT_APP_IMAGE  # the image the docker runtime runs it in


def grade(path: Path, options: GradeOptions = GradeOptions(), registry: Registry | None = None) -> dict[str, Any]:
    """Grade the submission at `path`. Raises UsageError for bad input; any other failure to grade becomes a
    result document with status "error", so a batch never loses a submission's record."""
    started = time.monotonic()
    _raise_open_files_limit()
    checks = registry if registry is not None else load_checks()
    rubric = rubrics.load(options.rubric, checks)  # also checks each check's options against its settings
    check_selection(rubric, options.only)
    quiz_settings = load_quiz_settings(rubric.source)  # a broken [quiz] table is a usage error before anything runs
    with open_workspace(path, app=options.app, app_dir=options.app_dir) as workspace:
        submission = Submission(workspace.name, str(workspace.source), workspace.commit)
        # Read before the app runs, so nothing the app does can change the answers.
        quiz = submission_quiz(workspace.root, workspace.name, rubric, quiz_settings, options.docs_url)
        environment: dict[str, Any] = {"runtime": options.runtime, "redis": None}
        timings: dict[str, float] = {"workspace": time.monotonic() - started}
        try:
            # Chosen once for the whole grading; on exit it removes whatever it started, whatever happened.
            with open_runtime(options.runtime, options.app_image) as runtime, activated(runtime):
                environment.update(runtime.describe())
                outcomes = _grade_workspace(workspace, rubric, checks, options, environment, timings, runtime)
        except GraderError as exc:
            result = failed_to_grade(
                submission, rubric, str(exc), duration_s=time.monotonic() - started, environment=environment
            )
        except Exception as exc:  # a harness bug costs this submission its grading, never a traceback
            log.debug("harness error", exc_info=True)
            result = failed_to_grade(
                submission, rubric, harness_error(exc), duration_s=time.monotonic() - started, environment=environment
            )
        else:
            result = graded(
                submission,
                rubric,
                checks,
                outcomes,
                duration_s=time.monotonic() - started,
                environment=environment,
                docs_url=options.docs_url,
            )
        add_quiz(result, quiz, rubric, quiz_settings)
    result["timings_s"] = {stage: round(seconds, 3) for stage, seconds in timings.items()}
    return valid_unicode(result)


# Where the grader's own code lives: the engine and the built-in checks (a traceback's frames in them are ours).
_OWN_CODE = tuple(str(Path(folder).resolve()) + os.sep for folder in (Path(__file__).parent, Path(__file__).parents[1] / "checks"))


def harness_error(exc: BaseException) -> str:
    """One line for a bug of the grader's own: what was raised, and the grader's line that raised it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(_OWN_CODE)]
    if not frames:
        return f"harness error: {type(exc).__name__}: {exc}"
    where = Path(frames[-1].filename)
    return f"harness error at {where.parent.name}/{where.name}:{frames[-1].lineno}: {type(exc).__name__}: {exc}"


def _raise_open_files_limit() -> None:
    """Concurrency checks open hundreds of sockets; a common soft limit of 1024 is too tight for that."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _grade_workspace(
    workspace: Workspace,
    rubric: rubrics.Rubric,
    checks: dict[str, Check],
    options: GradeOptions,
    environment: dict[str, Any],
    timings: dict[str, float],
    runtime: Runtime,
) -> dict[str, CheckOutcome]:
    def lap(stage: str, since: float) -> float:
        now = time.monotonic()
        timings[stage] = now - since
        return now

    mark = time.monotonic()
    facts = analyze(workspace.root)
    if workspace.entrypoint is None:
        return _gate_closed(rubric, failed(workspace.problem or "no FastAPI app found", searched=str(workspace.name)))

    mark = lap("static", mark)
    python_env = runtime.prepare(workspace.root, options.env)
    environment["python_env"] = python_env.description
    if python_env.ignored:
        environment["ignored_requirements"] = python_env.ignored
    mark = lap("environment", mark)
    with start_redis(options.redis, options.redis_image) as server, RedisProxy(server.host, server.port) as proxy:
        mark = lap("redis", mark)
        environment["redis"] = {"backend": server.backend, "version": server.version, "source": server.source}
        warnings = _redis_warnings(server, facts)
        if warnings:
            environment["warnings"] = warnings
        launch = AppLaunch(
            python=python_env.python, app_dir=workspace.entrypoint.app_dir, target=workspace.entrypoint.target
        )
        with runtime.app(launch, proxy, start_timeout=options.start_timeout) as app:
            start = app.start()
            mark = lap("app_start", mark)
            gate = _app_starts(start, app, workspace)
            if gate.outcome != "passed":
                # What is judged from the code alone is still judged: a start failure costs only what needs the app.
                return _gate_closed(rubric, gate) | judge_without_app(
                    rubric, checks, options, server, workspace, facts, python_env)
            # The isolated checks get a Redis of their own per background lane (grader/schedule.py); each
            # starts while the first checks run, and its lane waits for it only if it gets there first.
            with contextlib.ExitStack() as own_redis:
                own_servers = [own_redis.enter_context(start_redis_in_background(server.backend, options.redis_image))
                               for _ in range(_background_lanes(rubric, checks, options, server))]
                outcomes = _run_interruptibly(
                    run_checks(
                        rubric, checks, options, {APP_STARTS: gate}, app, start, proxy, server, own_servers,
                        workspace, facts, python_env,
                    )
                )
            lap("checks", mark)
            return outcomes


def _background_lanes(rubric: rubrics.Rubric, checks: dict[str, Check], options: GradeOptions,
                      server: RedisServer) -> int:
    """How many lanes the isolated checks run in, each with a Redis of its own. Two when there are two to run
    beside each other and Redis is a local redis-server (~20 ms and a few MB each); one behind a container
    backend, where a second server costs seconds to create; none when no isolated check is selected."""
    isolated = sum(check.isolated and selected(check.id, options.only) for check in in_rubric(rubric, checks))
    if isolated == 0:
        return 0
    return min(isolated, BACKGROUND_LANES) if server.backend == "local" else 1


def _run_interruptibly(checks: Coroutine[Any, Any, dict[str, CheckOutcome]]) -> dict[str, CheckOutcome]:
    """asyncio.run, where Ctrl-C and SIGTERM cancel the checks, so that every `finally` (the student's test run,
    the clients) runs inside the loop; then they surface as KeyboardInterrupt, as anywhere else in the grader.
    (A signal handler that raises in the middle of the event loop would leave tasks half-finished.)"""
    signals: list[int] = []

    async def main() -> dict[str, CheckOutcome]:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        installed: list[tuple[signal.Signals, Any]] = []
        if threading.current_thread() is threading.main_thread():  # the only thread signals reach
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous = signal.getsignal(signum)
                if previous in (signal.SIG_IGN, None):
                    continue  # what the caller ignores stays ignored
                loop.add_signal_handler(signum, lambda signum=signum: (signals.append(signum), task.cancel()))
                installed.append((signum, previous))
        try:
            return await checks
        finally:
            for signum, previous in installed:
                loop.remove_signal_handler(signum)
                signal.signal(signum, previous)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if signals:
            raise KeyboardInterrupt from None
        raise


def _redis_warnings(server: RedisServer, facts: StaticFacts) -> list[str]:
    warnings = [server.note] if server.note else []
    if server.major_version < 7:
        warning = f"Redis {server.version} is older than 7: Redis Functions (FUNCTION/FCALL) are not available"
        if facts.functions_api:
            first = facts.functions_api[0]
            warning += f"; this submission uses them ({first.file}:{first.line}) - grade it with Redis 7"
        warnings.append(warning)
    return warnings


def _app_starts(start: AppStart, app: AppHandle, workspace: Workspace) -> CheckOutcome:
    assert workspace.entrypoint is not None
    if start.ready:
        return passed(
            f"the app answered HTTP {start.startup_s:.1f} s after start",
            entrypoint=workspace.entrypoint.target,
            found=workspace.entrypoint.how,
        )
    cause = app.likely_cause()
    message = f"the app did not start: {start.failure}" + (f" - likely cause: {cause}" if cause else "")
    # Paths in the private copy mean nothing to the student: show them relative to the submission.
    private = f"{workspace.root}/"
    log_tail = app.log_tail(40)
    # An import error is fixed where the app is started, not in the Docker setup the rubric's sections teach.
    imports = any(sign in log_tail for sign in ("ModuleNotFoundError", "ImportError", "Could not import module"))
    # The student's own file and line lead: the raw log starts with uvicorn's and importlib's frames.
    where = student_frame(app.log_tail(200), workspace.root)
    return failed(
        message.replace(private, ""),
        hint=IMPORT_HINT if imports else None,
        sections=() if imports else None,
        **({"where": [where]} if where else {}),
        entrypoint=workspace.entrypoint.target,
        found=workspace.entrypoint.how,
        log_tail=log_tail.replace(private, "").splitlines(),
    )


def _gate_closed(rubric: rubrics.Rubric, gate: CheckOutcome) -> dict[str, CheckOutcome]:
    outcomes = {APP_STARTS: gate}
    for entry in rubric.entries:
        outcomes.setdefault(entry.check_id, skipped(f"the app did not start ({APP_STARTS} failed)"))
    return outcomes
