"""An example check from outside redis-grader: GET /health keeps answering while every Redis round trip is slow.

Installed, it is found through the `redis_grader.checks` entry point (see ../pyproject.toml); a rubric that lists
`example.slow_redis` runs it. docs/writing-a-check.md walks through it line by line.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.api import CheckContext, CheckOutcome, CheckSettings, check, commands_text, failed, passed, requests_text


@dataclass(frozen=True, kw_only=True)
class SlowRedisSettings(CheckSettings):
    """Options a rubric may set in the check's table, next to its points."""

    route: str = "/health"
    latency_s: float = 0.05  # added to every Redis round trip while the request runs


@check(
    "example.slow_redis",
    title="GET /health still answers, and asks Redis, when every Redis round trip is slow",
    level="advanced",
    requires=("app.uses_redis_url",),
    timeout=30.0,
    settings=SlowRedisSettings,
)
async def slow_redis(ctx: CheckContext[SlowRedisSettings]) -> CheckOutcome:
    route, latency_s = ctx.settings.route, ctx.settings.latency_s
    client = ctx.probe.client()
    # Both scopes end with the block: the proxy forwards at full speed again, and `commands` stops growing.
    with ctx.proxy.latency(latency_s), ctx.trace.recording() as commands:
        reply = await client.get(route)
    slow = f"with {latency_s * 1000:g} ms added to every Redis round trip"
    evidence = {"requests": requests_text([reply]), "redis": commands_text(commands) or ["(no command)"]}
    if not reply.ok:
        return failed(f"{slow}, GET {route} answered {reply.status or reply.error}, expected 200", **evidence)
    if not commands:
        return failed(f"GET {route} answered {reply.status} without asking Redis anything", **evidence)
    return passed(f"{slow}, GET {route} answered {reply.status} after {len(commands)} Redis command(s)", **evidence)
