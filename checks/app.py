"""The app starts, and talks to the Redis the harness gave it."""

from __future__ import annotations

from grader.api import (
    CheckContext,
    CheckOutcome,
    check,
    commands_text,
    decided_by_runner,
    failed,
    passed,
    requests_text,
)

# Decided by the runner: when the app never answers HTTP, every other check is skipped.
starts = decided_by_runner("app.starts", title="The app starts and answers HTTP", level="basic")


@check("app.uses_redis_url", title="The app talks to the Redis given in REDIS_URL", level="basic")
async def uses_redis_url(ctx: CheckContext) -> CheckOutcome:
    client = ctx.probe.client()
    replies = [await client.get("/health"), await client.get("/products")]
    # Everything since the app started counts: startup work (SCRIPT LOAD, PING) reaches Redis too.
    seen = ctx.trace.all()
    if seen:
        return passed(
            f"{len(seen)} Redis commands reached the harness's Redis through REDIS_URL",
            redis=commands_text(seen, limit=5),
        )
    hardcoded = [f"{f.file}:{f.line}: {f.text}" for f in ctx.facts.redis_urls]
    return failed(
        "no Redis command reached the Redis in REDIS_URL: the app connects somewhere else"
        + (f" (hard-coded at {hardcoded[0]})" if hardcoded else ""),
        requests=requests_text(replies),
        hardcoded_addresses=hardcoded,
        reads_REDIS_URL=ctx.facts.reads_redis_url_env,
    )
