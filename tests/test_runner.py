"""The runner with the real reference app: isolated checks run beside the ordinary ones and the timing ones against
a Redis of their own, timing checks run after the ordinary ones; what a check changes in the proxy is undone by its
scopes even when it times out; a check's rubric table reaches it as its typed settings. The checks here are test
checks, in a registry of the test's own, that record what they saw."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import pytest
from conftest import SUBMISSIONS, own_rubric

from grader.api import CheckContext, CheckOutcome, CheckSettings, Fault, Registry, check, failed, passed
from grader.runner import GradeOptions, grade

HEAD = own_rubric("runner-test", "")
RUBRIC = HEAD + """
[checks."test.timing"]
points = 10
[checks."test.isolated"]
points = 10
[checks."test.foreground"]
points = 10
"""
WAIT_S = 60  # a bound against a broken runner, not a measurement: the partner check answers at once
PRINT_REDIS_URL = [sys.executable, "-c", "import os; print(os.environ['REDIS_URL'])"]


def grade_with(tmp_path, monkeypatch, rubric_text: str, *checks) -> dict:
    """Grade the reference with a rubric of the test's own and the built-in checks plus `checks`."""
    registry = Registry.load(plugins=False)
    for declared in checks:
        registry.add(declared)
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(rubric_text)
    options = GradeOptions(rubric=str(rubric), redis="local", env="current")
    return grade(SUBMISSIONS / "reference", options, registry=registry.validate())


@pytest.mark.slow
def test_isolated_checks_run_beside_the_others_and_timing_checks_after_the_ordinary_ones(
    tmp_path, monkeypatch, no_leftovers
):
    seen: dict[str, object] = {}
    # Handshakes only checks running at the same time can complete (the rubric lists the isolated first): the
    # isolated check with the ordinary one, then with the timing one (a runner that made the timing checks wait
    # for the background would leave it waiting, and it would fail).
    foreground_ready, isolated_wrote, foreground_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    timing_started = asyncio.Event()

    @check("test.isolated", title="isolated", level="basic", isolated=True)
    async def isolated(ctx: CheckContext) -> CheckOutcome:
        await asyncio.wait_for(foreground_ready.wait(), WAIT_S)
        await ctx.redis.set("written-by-isolated", "1")
        isolated_wrote.set()
        await asyncio.wait_for(foreground_done.wait(), WAIT_S)
        run = await ctx.run(PRINT_REDIS_URL, timeout=60)
        seen["isolated_redis_url"] = run.output.strip()
        await asyncio.wait_for(timing_started.wait(), WAIT_S)
        return passed("ran beside test.foreground, then beside test.timing")

    @check("test.foreground", title="foreground", level="basic")
    async def foreground(ctx: CheckContext) -> CheckOutcome:
        foreground_ready.set()  # its Redis is fresh by now: what appears in it from here on is new
        await asyncio.wait_for(isolated_wrote.wait(), WAIT_S)
        seen["app_redis_url"] = (await ctx.run(PRINT_REDIS_URL, timeout=60)).output.strip()
        seen["app_redis_keys"] = await ctx.redis.keys("*")
        foreground_done.set()
        return passed("ran beside test.isolated")

    @check("test.timing", title="timing", level="basic", timing=True)
    async def timing(ctx: CheckContext) -> CheckOutcome:
        # Listed first in the rubric, run after the ordinary checks, beside the background.
        if not foreground_done.is_set():
            return failed("ran before the ordinary checks were done")
        timing_started.set()
        return passed("ran after the ordinary checks")

    result = grade_with(tmp_path, monkeypatch, RUBRIC, isolated, foreground, timing)

    outcomes = {c["id"]: (c["outcome"], c["message"]) for c in result["checks"]}
    assert all(outcome == "passed" for outcome, _ in outcomes.values()), outcomes
    assert [c["id"] for c in result["checks"]] == ["app.starts", "test.timing", "test.isolated", "test.foreground"]
    # The isolated check's commands go to a Redis of their own: not the app's proxy, and not the app's server.
    assert seen["isolated_redis_url"].startswith("redis://")
    assert seen["isolated_redis_url"] != seen["app_redis_url"]
    assert "written-by-isolated" not in seen["app_redis_keys"]



@dataclass(frozen=True, kw_only=True)
class GreetingSettings(CheckSettings):
    greeting: str
    repeat: int = 1


@pytest.mark.slow
def test_scopes_undo_what_a_check_changed_even_when_it_times_out_and_settings_are_typed(
    tmp_path, monkeypatch, no_leftovers
):
    seen: dict[str, object] = {}

    @check("test.stuck", title="stuck", level="basic")
    async def stuck(ctx: CheckContext) -> CheckOutcome:
        # Redis unreachable for the app, and every PING answered with an error, when the runner cancels it.
        with ctx.proxy.fault(Fault(lambda c: c.name == "PING")), ctx.proxy.latency(0.2), ctx.proxy.unreachable():
            await asyncio.sleep(3600)
        return passed("never")

    @check("test.after", title="after", level="basic", settings=GreetingSettings)
    async def after(ctx: CheckContext[GreetingSettings]) -> CheckOutcome:
        seen["settings"] = ctx.settings
        with ctx.trace.recording() as commands:
            health = await ctx.probe.client().get("/health")
            seen["live"] = len(commands)
        pings = [c for c in commands if c.name == "PING"]
        if health.status != 200 or not pings or pings[-1].dropped:
            return failed(f"the proxy was left as test.stuck made it: {health}, {[str(c) for c in pings]}")
        return passed("the proxy forwards faithfully again")

    rubric = HEAD + """
[checks."test.stuck"]
points = 10
timeout = 0.5
[checks."test.after"]
points = 10
greeting = "hello"
"""
    result = grade_with(tmp_path, monkeypatch, rubric, stuck, after)

    outcomes = {c["id"]: (c["outcome"], c["message"]) for c in result["checks"]}
    assert outcomes["test.stuck"] == ("error", "the check did not finish within 0.5 s")
    assert outcomes["test.after"][0] == "passed", outcomes
    assert seen["settings"] == GreetingSettings(timeout=60.0, greeting="hello", repeat=1)
    assert seen["live"] >= 1  # inside the block the recording is live


def test_an_option_the_check_does_not_take_is_a_rubric_error(tmp_path):
    from grader import rubric as rubrics
    from grader.errors import UsageError

    @check("test.greets", title="greets", level="basic", settings=GreetingSettings)
    async def greets(ctx: CheckContext[GreetingSettings]) -> CheckOutcome:
        return passed(ctx.settings.greeting)

    registry = Registry([greets])
    for table, problem in (
        ('greeting = "hi"\ngretting = 1', "gretting"),
        ('greeting = "hi"\nrepeat = "twice"', "repeat must be int"),
        ("repeat = 2", "greeting"),
    ):
        path = tmp_path / "rubric.toml"
        path.write_text(HEAD.replace('[checks."app.starts"]\npoints = 10\n', "")
                        + f'[checks."test.greets"]\npoints = 1\n{table}\n')
        with pytest.raises(UsageError, match=problem):
            rubrics.load(str(path), registry)
