"""Runs the checks of one grading: in the phases of grader/schedule.py, each from a fresh state, within its
timeout, skipped when a check it requires did not pass. It knows nothing of what a check does inside."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis.asyncio

from grader import rubric as rubrics
from grader import runtime, schedule
from grader.app import AppStart
from grader.checking import (
    Check,
    CheckContext,
    CheckSettings,
    ProxyControl,
    RunCommand,
    SubmissionFiles,
    TraceView,
    Unavailable,
)
from grader.environment import Environment
from grader.errors import GraderError, UsageError
from grader.machinelock import MeasuringLock, timing_phase
from grader.outcome import CheckOutcome, Outcome, error, skipped
from grader.probe import Probe
from grader.proxy import RedisProxy
from grader.runtime import AppHandle
from grader.services import RedisServer
from grader.services.guard import ANSWER_TIMEOUT, restore
from grader.static import StaticFacts
from grader.workspace import Workspace

if TYPE_CHECKING:
    from grader.runner import GradeOptions

# A check whose own work is bounded by its timeout (the submission's test suite, given settings.timeout) gets
# this long past it to report what it saw, rather than being cut off as the harness's error.
REPORT_GRACE_S = 10.0
# What the app is asked after an outage of its Redis, and how often: every route that uses Redis, once per
# connection a pool may hold (the app's own limiter, health and cache clients).
SETTLE_ROUTES = ("/health", "/products")
SETTLE_ROUNDS = 3
# How long the cheap "still empty?" probe before a check waits; a Redis that does not answer in time gets the
# full restore() (a healthy one answers in well under a millisecond).
EMPTY_PROBE_TIMEOUT_S = 1.0

log = logging.getLogger(__name__)
T = TypeVar("T")


def selected(check_id: str, only: tuple[str, ...]) -> bool:
    """Whether --only (ids or glob patterns; empty: everything) selects this check."""
    return not only or any(fnmatch.fnmatchcase(check_id, pattern) for pattern in only)


def check_selection(rubric: rubrics.Rubric, only: tuple[str, ...]) -> None:
    """Raises UsageError for an --only id or pattern that selects no check of the rubric: a mistyped id would
    otherwise leave every check out but app.starts, and the submission would get full marks for it."""
    for pattern in only:
        if not any(selected(entry.check_id, (pattern,)) for entry in rubric.entries):
            raise UsageError(f"--only {pattern!r} matches no check of rubric {rubric.source} "
                             "(`grader checks` lists them)")


async def run_checks(
    rubric: rubrics.Rubric,
    checks: Mapping[str, Check],
    options: GradeOptions,
    decided: Mapping[str, CheckOutcome],
    app: AppHandle,
    start: AppStart,
    proxy: RedisProxy,
    server: RedisServer,
    own_servers: Sequence[Future[RedisServer]],
    workspace: Workspace,
    facts: StaticFacts,
    python_env: Environment,
) -> dict[str, CheckOutcome]:
    """Runs every check of the rubric not `decided` yet, in the order and phases of grader/schedule.py; returns
    every outcome (the decided ones too), in the rubric's order. The isolated checks run in one background lane
    per server of `own_servers` (at least one lane: with none, an isolated check reports it has no Redis)."""
    assert workspace.entrypoint is not None
    outcomes = dict(decided)
    # Left out by --only: decided now, so that no step waits for the machine lock on behalf of checks that never run.
    for entry in rubric.entries:
        if entry.check_id not in outcomes and not selected(entry.check_id, options.only):
            outcomes[entry.check_id] = skipped("not selected (--only)", applicable=False)
    todo = [entry.check_id for entry in rubric.entries if entry.check_id not in outcomes]
    settings = _settings(rubric, checks, todo)
    probe = Probe(start.base_url, timeout=options.request_timeout)
    direct = redis.asyncio.from_url(server.url, decode_responses=True)
    base = base_context(proxy, direct, workspace, facts, python_env.python, probe=probe, proxy=ProxyControl(proxy),
                        trace=TraceView(proxy.trace), app_log=app.log_tail)
    lanes = [_IsolatedContext(base, future) for future in own_servers] or [_IsolatedContext(base, None)]
    finished = {check_id: asyncio.Event() for check_id in todo}

    async def run(check: Check, isolated: _IsolatedContext, timing: bool) -> CheckOutcome:
        """One check; `timing`: under the machine lock (grader/machinelock.py), for the whole check or, declared
        lock="measuring", only inside its ctx.measuring()."""
        if check.isolated:
            return await _run_isolated(check, isolated, settings[check.id])
        own = replace(context, settings=settings[check.id])
        if not (timing and check.timing):  # one that only requires a timing check takes no turn of the lock
            return await _run_one(check, own, app, server)
        if check.lock == "measuring":
            measuring = MeasuringLock()
            return await _run_one(check, replace(own, measuring=measuring), app, server, paused=measuring.waited_s)
        async with timing_phase():  # no other grading's timing check runs meanwhile
            return await _run_one(check, own, app, server)

    async def run_in_order(check_ids: list[str], isolated: _IsolatedContext = lanes[0], timing: bool = False) -> None:
        for check_id in check_ids:
            check = checks[check_id]
            for needed in check.requires:
                if needed in finished:
                    await finished[needed].wait()  # a check of another lane, or of the foreground
            outcome = _not_to_run(check, outcomes)
            outcomes[check_id] = outcome if outcome is not None else await run(check, isolated, timing)
            finished[check_id].set()

    try:
        context = replace(base, openapi=await _openapi(probe))
        phases = schedule.plan(todo, checks)
        # The background uses neither an app nor a Redis any other check uses, and its commands run at a low
        # processor priority (grader/schedule.py), so nothing it does weighs on a timing check.
        background = asyncio.gather(*(run_in_order(lane, isolated=own)
                                      for lane, own in zip(phases.lanes(len(lanes)), lanes, strict=True)))
        try:
            await run_in_order(phases.foreground)
            await run_in_order(phases.last, timing=True)
            await background
        finally:
            if not background.done():
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        await run_in_order(phases.after_background, timing=True)
    finally:
        await base.memo.close()  # before the lanes' Redis goes: a suite still running is stopped first
        for lane in lanes:
            await lane.aclose()
        await probe.aclose()
        await direct.aclose()
    in_order = {entry.check_id: outcomes[entry.check_id] for entry in rubric.entries}
    return {**in_order, **{k: v for k, v in outcomes.items() if k not in in_order}}


def _settings(rubric: rubrics.Rubric, checks: Mapping[str, Check], check_ids: list[str]) -> dict[str, CheckSettings]:
    """Each check's typed settings from its rubric table (a rubric loaded with the checks was checked already)."""
    try:
        return {check_id: checks[check_id].settings_for(rubric.entry(check_id).options)  # type: ignore[union-attr]
                for check_id in check_ids}
    except ValueError as exc:
        raise UsageError(f"rubric {rubric.source}: {exc}") from None


def in_rubric(rubric: rubrics.Rubric, checks: Mapping[str, Check]) -> list[Check]:
    return [checks[entry.check_id] for entry in rubric.entries]


def base_context(endpoint: RedisProxy | RedisServer, direct: redis.asyncio.Redis, workspace: Workspace,
                 facts: StaticFacts, python: str, **app_parts: Any) -> CheckContext:
    """The context every check starts from: the submission's files and facts, the harness's own connection to
    Redis, ctx.run with REDIS_URL at `endpoint`; `app_parts` are the running app's probe, proxy, trace, app_log.
    Its memo (ctx.once) is the grading's, shared by every copy of it: the caller closes it when the grading ends."""
    assert workspace.entrypoint is not None
    files = SubmissionFiles(workspace.root, workspace.entrypoint.app_dir, workspace.entrypoint.module)
    return CheckContext(redis=direct, facts=facts, workspace=files, openapi={}, settings=CheckSettings(),
                        run=_runner_for(endpoint, python, files.app_dir), python=python, **app_parts)


def _runner_for(endpoint: RedisProxy | RedisServer, python: str, app_dir: Path, *,
                yields: bool = False) -> RunCommand:
    """ctx.run: a command in the submission's environment, with REDIS_URL pointing at `endpoint`, run by the
    grading's runtime (`cwd` defaults to the app's folder; a check may pick another inside the workspace).
    `yields`: at a low processor priority (the isolated checks', which run beside the timing checks)."""
    return runtime.current().runner(endpoint, python, app_dir, yields=yields)


class _IsolatedContext:
    """The context of the isolated checks: ctx.redis and ctx.run point at their own Redis, made the first time
    one of them runs (the server itself started beside the app; see _grade_workspace)."""

    def __init__(self, base: CheckContext, own_server: Future[RedisServer] | None):
        self._base = base
        self._own_server = own_server
        self._context: CheckContext | None = None
        self.server: RedisServer | None = None

    async def get(self) -> CheckContext:
        if self._context is None:
            if self._own_server is None:
                raise GraderError("no Redis was started for the isolated checks")
            server = self.server = await asyncio.wrap_future(self._own_server)
            self._context = replace(
                self._base,
                probe=cast(Probe, Unavailable("ctx.probe (the app)")),
                proxy=cast(ProxyControl, Unavailable("ctx.proxy (the app's Redis)")),
                trace=cast(TraceView, Unavailable("ctx.trace (the app's Redis commands)")),
                redis=redis.asyncio.from_url(server.url, decode_responses=True),
                run=_runner_for(server, self._base.python, self._base.app_dir, yields=True),
            )
        return self._context

    async def aclose(self) -> None:
        if self._context is not None:
            await self._context.redis.aclose()


def _not_to_run(check: Check, outcomes: Mapping[str, CheckOutcome]) -> CheckOutcome | None:
    """Why `check` is skipped without running (a requirement did not pass), or None."""
    for needed in check.requires:
        if needed in outcomes and _blocks(outcomes[needed]):
            return skipped(f"needs {needed}, which {outcomes[needed].outcome}")
    return None


async def _run_one(check: Check, ctx: CheckContext, app: AppHandle, server: RedisServer,
                   paused: Callable[[], float] = lambda: 0.0) -> CheckOutcome:
    exit_code = app.poll()
    if exit_code is not None:
        return error(f"the app exited (code {exit_code}) during grading", log_tail=app.log_tail(30).splitlines())
    return await _timed(check, ctx, server, app.log_tail, paused)


async def _run_isolated(check: Check, isolated: _IsolatedContext, settings: CheckSettings) -> CheckOutcome:
    try:
        ctx = await isolated.get()
    except GraderError as exc:
        return error(f"could not start a Redis for {check.id}: {exc}")
    assert isolated.server is not None
    return await _timed(check, replace(ctx, settings=settings), isolated.server, lambda lines: "")


async def _timed(
    check: Check, ctx: CheckContext, server: RedisServer, log_tail: Callable[[int], str],
    paused: Callable[[], float] = lambda: 0.0,
) -> CheckOutcome:
    """Runs the check from a fresh state, within its timeout; a harness bug becomes this check's error.

    What a check changes in the proxy it changes in scopes that undo themselves (grader/checking.py), so the
    runner only has to empty Redis first. What the submission did to Redis itself (a script that never ends, a
    password, a shutdown) is undone after the check, and the check's outcome says so. `paused()`: the seconds the
    check spent waiting for the machine lock so far, left out of its timeout and its duration."""
    before = await _empty_or_fresh(ctx, server)
    if before is not None and not await _answers(ctx):
        return error(f"the grader's Redis could not be made ready for this check: {before}")
    timeout = ctx.settings.timeout
    started = time.monotonic()
    try:
        outcome = await _within(check.func(ctx), timeout + REPORT_GRACE_S, paused)
        outcome.duration_s = round(time.monotonic() - started - paused(), 3)
    except asyncio.TimeoutError:
        outcome = error(f"the check did not finish within {timeout:g} s", log_tail=log_tail(20).splitlines())
    except Exception as exc:  # noqa: BLE001 - a harness bug must cost this check, not the whole grade
        outcome = error(
            f"harness error in {check.id}: {type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=6).splitlines()[-12:],
        )
    if isinstance(ctx.proxy, ProxyControl) and ctx.proxy.took_redis_down():
        await _settle_app(ctx)
    after = await _fresh_redis(ctx, server)
    return _noting_restores(outcome, [note for note in (before, after) if note is not None])


async def _within(work: Awaitable[T], timeout_s: float, paused: Callable[[], float]) -> T:
    """asyncio.wait_for(work, timeout_s) on a clock that stops while `paused()` grows: a check waiting its turn for
    the machine lock on a busy machine waits, and never runs out of time for it."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        while (left := started + timeout_s + paused() - loop.time()) > 0:
            done, _ = await asyncio.wait({task}, timeout=left)
            if done:
                break
        if not task.done():
            raise asyncio.TimeoutError
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _settle_app(ctx: CheckContext) -> None:
    """After Redis was unreachable for the app, the connections in its pools are dead, and a client without
    retries fails its next command on each of them. The grader spends those failures on requests of its own (from
    a fresh address), so the next check meets an app that talks to Redis again: the order of the checks must not
    matter."""
    client = ctx.probe.client()
    for _ in range(SETTLE_ROUNDS):
        for route in SETTLE_ROUTES:
            await client.get(route)


def _noting_restores(outcome: CheckOutcome, notes: list[str]) -> CheckOutcome:
    """A check during which the submission wedged or tampered with Redis says what the grader had to do."""
    if notes:
        outcome.message = f"{outcome.message} (the grader had to restore its Redis: {'; '.join(notes)})"
        outcome.evidence["redis_restored"] = notes
    return outcome


def _blocks(requirement: CheckOutcome) -> bool:
    """A required check that did not pass blocks its dependants; one left out by --only does not."""
    return requirement.outcome != Outcome.PASSED and requirement.applicable


async def _fresh_redis(ctx: CheckContext, server: RedisServer) -> str | None:
    """Every check starts from an empty Redis (an isolated one: its own), so order never matters. restore()
    empties it, bringing it back first when a submission wedged or replaced what it was; the note says what it
    had to do (None: nothing was wrong)."""
    note = await restore(server)
    if note is not None:
        log.warning("%s", note)
        await ctx.redis.connection_pool.disconnect()  # its connections may lead to a server just replaced
    return note


async def _empty_or_fresh(ctx: CheckContext, server: RedisServer) -> str | None:
    """_fresh_redis() when it is needed: the check before left Redis emptied and answering, so one DBSIZE on the
    harness's open connection usually confirms it (~0.2 ms, against ~5 ms for restore()'s new connection and
    FLUSHALL in a thread). Keys written since (the app's start-up, a background task), an error or no answer get
    the full restore()."""
    try:
        if await asyncio.wait_for(ctx.redis.dbsize(), EMPTY_PROBE_TIMEOUT_S) == 0:
            return None
    except (asyncio.TimeoutError, redis.RedisError, OSError):
        pass
    return await _fresh_redis(ctx, server)


async def _answers(ctx: CheckContext) -> bool:
    try:
        return bool(await asyncio.wait_for(ctx.redis.ping(), ANSWER_TIMEOUT))
    except (asyncio.TimeoutError, redis.RedisError, OSError):
        return False


async def _openapi(probe: Probe) -> dict[str, Any]:
    reply = await probe.client().get("/openapi.json")
    body = reply.body
    return body if reply.status == 200 and isinstance(body, dict) else {}
