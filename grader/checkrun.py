"""Runs the checks of one grading: in the phases of grader/schedule.py, each from a fresh state, within its
timeout, skipped when a check it requires did not pass. It knows nothing of what a check does inside."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio

from grader import rubric as rubrics
from grader import runtime, schedule
from grader.app import AppStart, RunningApp
from grader.checking import Check, CheckContext, RunCommand
from grader.environment import Environment
from grader.errors import GraderError
from grader.outcome import CheckOutcome, error, skipped
from grader.probe import Probe
from grader.proxy import RedisProxy
from grader.services import RedisServer
from grader.static import StaticFacts
from grader.workspace import Workspace

if TYPE_CHECKING:
    from grader.runner import GradeOptions


def redis_env(endpoint: RedisProxy | RedisServer) -> dict[str, str]:
    """REDIS_URL etc. as the submission's code sees them in the current runtime (grader/runtime/)."""
    return runtime.current().redis_env(endpoint)


def selected(check_id: str, only: tuple[str, ...]) -> bool:
    """Whether --only (ids or glob patterns; empty: everything) selects this check."""
    return not only or any(fnmatch.fnmatchcase(check_id, pattern) for pattern in only)


async def run_checks(
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


def in_rubric(rubric: rubrics.Rubric, checks: dict[str, Check]) -> list[Check]:
    return [checks[entry.check_id] for entry in rubric.entries]


def _runner_for(endpoint: RedisProxy | RedisServer, python: str, app_dir: Path) -> RunCommand:
    """ctx.run: a command in the submission's environment, with REDIS_URL pointing at `endpoint`, run by the
    grading's runtime (`cwd` defaults to the app's folder; a check may pick another inside the workspace)."""
    return runtime.current().runner(endpoint, python, app_dir)


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
