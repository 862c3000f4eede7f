"""Grades one submission: workspace -> environment -> Redis -> proxy -> app -> probe -> checks -> result.

The runner decides `app.starts` itself (it is the gate: when the app never answers, every other check is
skipped) and runs every other check through the plugin API, knowing nothing of what a check does inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import resource
import signal
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import redis.asyncio

from grader import rubric as rubrics
from grader import schedule
from grader.app import AppLaunch, AppStart, RunningApp
from grader.checking import Check, CheckContext, RunCommand, load_checks
from grader.environment import Environment, prepare_environment
from grader.errors import GraderError
from grader.outcome import CheckOutcome, error, failed, passed, skipped
from grader.probe import Probe
from grader.proxy import RedisProxy
from grader.result import Submission, failed_to_grade, graded
from grader.sandbox import CompletedRun, run_sandboxed
from grader.services import RedisServer, start_redis, start_redis_in_background
from grader.static import StaticFacts, analyze
from grader.workspace import Workspace, open_workspace

APP_STARTS = "app.starts"


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


def grade(path: Path, options: GradeOptions = GradeOptions()) -> dict[str, Any]:
    """Grade the submission at `path`. Raises UsageError for bad input; any other failure to grade becomes a
    result document with status "error", so a batch never loses a submission's record."""
    started = time.monotonic()
    _raise_open_files_limit()
    checks = load_checks()
    rubric = rubrics.load(options.rubric, set(checks))
    with open_workspace(path, app=options.app, app_dir=options.app_dir) as workspace:
        submission = Submission(workspace.name, str(workspace.source), workspace.commit)
        environment: dict[str, Any] = {"runtime": "local", "redis": None}
        timings: dict[str, float] = {"workspace": time.monotonic() - started}
        try:
            outcomes = _grade_workspace(workspace, rubric, checks, options, environment, timings)
        except GraderError as exc:
            result = failed_to_grade(
                submission, rubric, str(exc), duration_s=time.monotonic() - started, environment=environment
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
    result["timings_s"] = {stage: round(seconds, 3) for stage, seconds in timings.items()}
    return result


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
    python_env = prepare_environment(workspace.root, options.env)
    environment["python_env"] = python_env.description
    mark = lap("environment", mark)
    with start_redis(options.redis, options.redis_image) as server, RedisProxy(server.host, server.port) as proxy:
        mark = lap("redis", mark)
        environment["redis"] = {"backend": server.backend, "version": server.version, "source": server.source}
        warnings = _redis_warnings(server, facts)
        if warnings:
            environment["warnings"] = warnings
        launch = AppLaunch(
            python=python_env.python,
            app_dir=workspace.entrypoint.app_dir,
            target=workspace.entrypoint.target,
            env=_redis_env(proxy),
        )
        with RunningApp(launch, start_timeout=options.start_timeout) as app:
            start = app.start()
            mark = lap("app_start", mark)
            gate = _app_starts(start, app, workspace)
            if gate.outcome != "passed":
                return _gate_closed(rubric, gate)
            outcomes = {APP_STARTS: gate}
            # The isolated checks get a Redis of their own (grader/schedule.py); it starts while the first
            # checks run, and they wait for it only if they get there first.
            own_redis = (
                start_redis_in_background(server.backend, options.redis_image)
                if any(check.isolated and selected(check.id, options.only) for check in _in_rubric(rubric, checks))
                else contextlib.nullcontext(None)
            )
            with own_redis as own_server:
                _run_interruptibly(
                    _run_checks(
                        rubric, checks, options, outcomes, app, start, proxy, server, own_server, workspace, facts,
                        python_env,
                    )
                )
            lap("checks", mark)
            return outcomes


def _run_interruptibly(checks: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, where Ctrl-C and SIGTERM cancel the checks, so that every `finally` (the student's test run,
    the clients) runs inside the loop; then they surface as KeyboardInterrupt, as anywhere else in the grader.
    (A signal handler that raises in the middle of the event loop would leave tasks half-finished.)"""
    signals: list[int] = []

    async def main() -> None:
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
            await checks
        finally:
            for signum, previous in installed:
                loop.remove_signal_handler(signum)
                signal.signal(signum, previous)

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        if signals:
            raise KeyboardInterrupt from None
        raise


def _redis_env(endpoint: RedisProxy | RedisServer) -> dict[str, str]:
    return {"REDIS_URL": endpoint.url, "REDIS_HOST": endpoint.host, "REDIS_PORT": str(endpoint.port)}


def _redis_warnings(server: RedisServer, facts: StaticFacts) -> list[str]:
    warnings = [server.note] if server.note else []
    if server.major_version < 7:
        warning = f"Redis {server.version} is older than 7: Redis Functions (FUNCTION/FCALL) are not available"
        if facts.functions_api:
            first = facts.functions_api[0]
            warning += f"; this submission uses them ({first.file}:{first.line}) - grade it with Redis 7"
        warnings.append(warning)
    return warnings


def _app_starts(start: AppStart, app: RunningApp, workspace: Workspace) -> CheckOutcome:
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
    return failed(
        message.replace(private, ""),
        entrypoint=workspace.entrypoint.target,
        found=workspace.entrypoint.how,
        log_tail=app.log_tail(40).replace(private, "").splitlines(),
    )


def _gate_closed(rubric: rubrics.Rubric, gate: CheckOutcome) -> dict[str, CheckOutcome]:
    outcomes = {APP_STARTS: gate}
    for entry in rubric.entries:
        outcomes.setdefault(entry.check_id, skipped(f"the app did not start ({APP_STARTS} failed)"))
    return outcomes


def selected(check_id: str, only: tuple[str, ...]) -> bool:
    """Whether --only (ids or glob patterns; empty: everything) selects this check."""
    return not only or any(fnmatch.fnmatchcase(check_id, pattern) for pattern in only)


async def _run_checks(
    rubric: rubrics.Rubric,
    checks: dict[str, Check],
    options: GradeOptions,
    outcomes: dict[str, CheckOutcome],
    app: RunningApp,
    start: AppStart,
    proxy: RedisProxy,
    server: RedisServer,
    own_server: Future[RedisServer] | None,
    workspace: Workspace,
    facts: StaticFacts,
    python_env: Environment,
) -> None:
    """Runs every check not decided yet, in the order and phases of grader/schedule.py."""
    assert workspace.entrypoint is not None
    probe = Probe(start.base_url, timeout=options.request_timeout)
    direct = redis.asyncio.from_url(server.url, decode_responses=True)
    base = CheckContext(
        probe=probe,
        redis=direct,
        proxy=proxy,
        server=server,
        facts=facts,
        workspace=workspace,
        openapi={},
        settings={},
        run=_runner_for(proxy, python_env.python, workspace.entrypoint.app_dir),
        python=python_env.python,
        app_dir=workspace.entrypoint.app_dir,
    )
    isolated = _IsolatedContext(base, own_server)
    todo = [entry.check_id for entry in rubric.entries if entry.check_id not in outcomes]
    settings = {entry.check_id: entry.settings for entry in rubric.entries}
    decided = {check_id: asyncio.Event() for check_id in todo}

    async def run_in_order(check_ids: list[str]) -> None:
        for check_id in check_ids:
            check = checks[check_id]
            for needed in check.requires:
                if needed in decided:
                    await decided[needed].wait()  # only a background check ever waits here
            outcome = _not_to_run(check, outcomes, options)
            if outcome is None and check.isolated:
                outcome = await _run_isolated(check, isolated, settings[check_id])
            elif outcome is None:
                outcome = await _run_one(check, replace(context, settings=settings[check_id]), app)
            outcomes[check_id] = outcome
            decided[check_id].set()

    try:
        context = replace(base, openapi=await _openapi(probe))
        phases = schedule.plan(todo, checks)
        background = asyncio.create_task(run_in_order(phases.background))
        try:
            await run_in_order(phases.foreground)
            await background
        finally:
            if not background.done():
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        await run_in_order(phases.last)
    finally:
        await isolated.aclose()
        await probe.aclose()
        await direct.aclose()


def _in_rubric(rubric: rubrics.Rubric, checks: dict[str, Check]) -> list[Check]:
    return [checks[entry.check_id] for entry in rubric.entries]


def _runner_for(endpoint: RedisProxy | RedisServer, python: str, app_dir: Path) -> RunCommand:
    """ctx.run: a command in the submission's environment, with REDIS_URL pointing at `endpoint`."""

    async def run(
        argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> CompletedRun:
        """`cwd` defaults to the app's folder; a check may pick another inside the workspace (its tests' root)."""
        bin_dir = str(Path(python).parent)
        full_env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", **_redis_env(endpoint), **(env or {})}
        return await run_sandboxed(argv, cwd or app_dir, full_env, timeout=timeout)

    return run


class _IsolatedContext:
    """The context of the isolated checks: ctx.redis and ctx.run point at their own Redis, made the first time
    one of them runs (the server itself started beside the app; see _grade_workspace)."""

    def __init__(self, base: CheckContext, own_server: Future[RedisServer] | None):
        self._base = base
        self._own_server = own_server
        self._context: CheckContext | None = None

    async def get(self) -> CheckContext:
        if self._context is None:
            if self._own_server is None:
                raise GraderError("no Redis was started for the isolated checks")
            server = await asyncio.wrap_future(self._own_server)
            self._context = replace(
                self._base,
                redis=redis.asyncio.from_url(server.url, decode_responses=True),
                server=server,
                run=_runner_for(server, self._base.python, self._base.app_dir),
            )
        return self._context

    async def aclose(self) -> None:
        if self._context is not None:
            await self._context.redis.aclose()


def _not_to_run(check: Check, outcomes: dict[str, CheckOutcome], options: GradeOptions) -> CheckOutcome | None:
    """Why `check` is skipped without running (left out by --only, or a requirement did not pass), or None."""
    if not selected(check.id, options.only):
        return skipped("not selected (--only)", applicable=False)
    for needed in check.requires:
        if needed in outcomes and _blocks(outcomes[needed]):
            return skipped(f"needs {needed}, which {outcomes[needed].outcome}")
    return None


async def _run_one(check: Check, ctx: CheckContext, app: RunningApp) -> CheckOutcome:
    exit_code = app.poll()
    if exit_code is not None:
        return error(f"the app exited (code {exit_code}) during grading", log_tail=app.log_tail(30).splitlines())
    return await _timed(check, ctx, _fresh_state, app.log_tail)


async def _run_isolated(check: Check, isolated: _IsolatedContext, settings: dict[str, Any]) -> CheckOutcome:
    try:
        ctx = await isolated.get()
    except GraderError as exc:
        return error(f"could not start a Redis for {check.id}: {exc}")
    return await _timed(check, replace(ctx, settings=settings), _empty_redis, lambda lines: "")


async def _timed(
    check: Check,
    ctx: CheckContext,
    fresh: Callable[[CheckContext], Awaitable[None]],
    log_tail: Callable[[int], str],
) -> CheckOutcome:
    """Runs the check from a fresh state, within its timeout; a harness bug becomes this check's error."""
    await fresh(ctx)
    started = time.monotonic()
    try:
        outcome = await asyncio.wait_for(check.func(ctx), timeout=check.timeout)
        outcome.duration_s = round(time.monotonic() - started, 3)
        return outcome
    except asyncio.TimeoutError:
        return error(f"the check did not finish within {check.timeout:g} s", log_tail=log_tail(20).splitlines())
    except Exception as exc:  # noqa: BLE001 - a harness bug must cost this check, not the whole grade
        return error(
            f"harness error in {check.id}: {type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=6).splitlines()[-12:],
        )
    finally:
        await fresh(ctx)


def _blocks(requirement: CheckOutcome) -> bool:
    """A required check that did not pass blocks its dependants; one left out by --only does not."""
    return requirement.outcome != "passed" and requirement.applicable


async def _fresh_state(ctx: CheckContext) -> None:
    """Every check starts from an empty Redis and a proxy that forwards faithfully, so order never matters."""
    ctx.proxy.clear_faults()
    ctx.proxy.latency = 0.0
    ctx.proxy.set_reachable(True)
    await _empty_redis(ctx)


async def _empty_redis(ctx: CheckContext) -> None:
    """An isolated check's fresh state: its own Redis emptied (the app's proxy is not its to touch)."""
    await ctx.redis.flushall()


async def _openapi(probe: Probe) -> dict[str, Any]:
    reply = await probe.client().get("/openapi.json")
    body = reply.body
    return body if reply.status == 200 and isinstance(body, dict) else {}
