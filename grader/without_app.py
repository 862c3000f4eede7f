"""The checks judged from the code alone (`@check(needs_app=False)`), run when the app did not start: a start
failure costs the checks that need the app, not the ones that read the code (async.client, ruff)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import redis.asyncio

from grader import rubric as rubrics
from grader.checking import Check, CheckContext, CheckSettings, Unavailable
from grader.checkrun import _settings, _timed, base_context, selected
from grader.environment import Environment
from grader.outcome import CheckOutcome
from grader.services import RedisServer
from grader.static import StaticFacts
from grader.workspace import Workspace

if TYPE_CHECKING:
    from grader.runner import GradeOptions


def code_only(rubric: rubrics.Rubric, checks: Mapping[str, Check], options: GradeOptions) -> list[str]:
    """The rubric's checks that need no running app and no other check's pass, as --only selects them."""
    return [entry.check_id for entry in rubric.entries
            if (check := checks.get(entry.check_id)) is not None and not check.needs_app
            and not check.decided_by_runner and not check.requires and selected(check.id, options.only)]


def judge_without_app(
    rubric: rubrics.Rubric,
    checks: Mapping[str, Check],
    options: GradeOptions,
    server: RedisServer,
    workspace: Workspace,
    facts: StaticFacts,
    python_env: Environment,
) -> dict[str, CheckOutcome]:
    """The outcomes of the code-only checks, each run as it would be beside the app (its timeout, a fresh Redis:
    the app's own, free now that the app is gone)."""
    todo = code_only(rubric, checks, options)
    if not todo or workspace.entrypoint is None:
        return {}
    return asyncio.run(_judge(todo, rubric, checks, server, workspace, facts, python_env))


async def _judge(todo: list[str], rubric: rubrics.Rubric, checks: Mapping[str, Check], server: RedisServer,
                 workspace: Workspace, facts: StaticFacts, python_env: Environment) -> dict[str, CheckOutcome]:
    direct = redis.asyncio.from_url(server.url, decode_responses=True)
    base = base_context(server, direct, workspace, facts, python_env.python,
                        **{part: Unavailable(f"ctx.{part} (the app, which did not start)")
                           for part in ("probe", "proxy", "trace")})
    settings = _settings(rubric, checks, todo)
    try:
        return {check_id: await _timed(checks[check_id], _with(base, settings[check_id]), server, lambda n: "")
                for check_id in todo}
    finally:
        await base.memo.close()
        await direct.aclose()


def _with(base: CheckContext, settings: CheckSettings) -> CheckContext:
    return replace(base, settings=settings)
