"""The runner's phases with the real reference app: isolated checks run beside the ordinary ones against a Redis
of their own, and timing checks run last, alone. The checks here are test plugins that record what they saw."""

from __future__ import annotations

import asyncio
import sys

import pytest
from conftest import SUBMISSIONS

from grader import checking
from grader.checking import Check, CheckContext
from grader.outcome import CheckOutcome, failed, passed
from grader.runner import GradeOptions, grade

RUBRIC = """
name = "runner-test"
docs_url = "https://textbook.example.org/redis"
[grades]
S = 90
A = 80
B = 70
C = 0
[sections]
[checks."app.starts"]
points = 10
[checks."test.timing"]
points = 10
[checks."test.isolated"]
points = 10
[checks."test.foreground"]
points = 10
"""
WAIT_S = 60  # a bound against a broken runner, not a measurement: the partner check answers at once


@pytest.mark.slow
def test_isolated_checks_run_beside_the_others_and_timing_checks_alone(tmp_path, monkeypatch, no_leftovers):
    seen: dict[str, object] = {}
    # A handshake only two checks running at the same time can complete (the rubric lists the isolated first).
    foreground_ready, isolated_wrote, foreground_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def isolated(ctx: CheckContext) -> CheckOutcome:
        await asyncio.wait_for(foreground_ready.wait(), WAIT_S)
        await ctx.redis.set("written-by-isolated", "1")
        isolated_wrote.set()
        await asyncio.wait_for(foreground_done.wait(), WAIT_S)
        run = await ctx.run([sys.executable, "-c", "import os; print(os.environ['REDIS_URL'])"], timeout=60)
        seen["isolated_redis_url"] = run.output.strip()
        seen["isolated_finished"] = True
        return passed("ran beside test.foreground")

    async def foreground(ctx: CheckContext) -> CheckOutcome:
        foreground_ready.set()  # its Redis is fresh by now: what appears in it from here on is new
        await asyncio.wait_for(isolated_wrote.wait(), WAIT_S)
        seen["app_redis_url"] = ctx.proxy.url
        seen["app_redis_keys"] = await ctx.redis.keys("*")
        foreground_done.set()
        return passed("ran beside test.isolated")

    async def timing(ctx: CheckContext) -> CheckOutcome:
        # Listed first in the rubric, run last: by now everything else is done.
        if not (foreground_done.is_set() and seen.get("isolated_finished")):
            return failed("ran while other checks were still running")
        return passed("ran alone, last")

    for check_id, func, flags in (
        ("test.isolated", isolated, {"isolated": True}),
        ("test.foreground", foreground, {}),
        ("test.timing", timing, {"timing": True}),
    ):
        monkeypatch.setitem(checking._REGISTRY, check_id, Check(check_id, check_id, "basic", func, **flags))
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(RUBRIC)

    result = grade(SUBMISSIONS / "reference", GradeOptions(rubric=str(rubric), redis="local", env="current"))

    outcomes = {c["id"]: (c["outcome"], c["message"]) for c in result["checks"]}
    assert all(outcome == "passed" for outcome, _ in outcomes.values()), outcomes
    assert [c["id"] for c in result["checks"]] == ["app.starts", "test.timing", "test.isolated", "test.foreground"]
    # The isolated check's commands go to a Redis of their own: not the app's proxy, and not the app's server.
    assert seen["isolated_redis_url"].startswith("redis://")
    assert seen["isolated_redis_url"] != seen["app_redis_url"]
    assert "written-by-isolated" not in seen["app_redis_keys"]

