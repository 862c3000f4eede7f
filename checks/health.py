"""GET /health pings Redis, and says so honestly when Redis is gone."""

from __future__ import annotations

import asyncio

from grader.api import CheckContext, CheckOutcome, check, commands_text, failed, passed, requests_text

# How long /health may take to answer while Redis is unreachable before it counts as hanging.
DOWN_ANSWER_TIMEOUT = 8.0


@check(
    "health.redis_ping",
    title="GET /health pings Redis and reports it down when unreachable",
    level="basic",
    requires=("app.uses_redis_url",),
)
async def redis_ping(ctx: CheckContext) -> CheckOutcome:
    client = ctx.probe.client()
    with ctx.trace.recording() as commands:
        up = await client.get("/health")
    if up.status != 200:
        return failed(
            f"GET /health answered {up.status if up.error is None else up.error} while Redis was up, expected 200",
            requests=[str(up)], body=up.text[:300], redis=commands_text(commands),
        )
    if not any(c.name == "PING" for c in commands):
        return failed(
            "GET /health answered 200 but sent no PING to Redis, so it cannot know whether Redis is up",
            requests=[str(up)], redis=commands_text(commands) or ["(no command)"],
        )

    with ctx.proxy.unreachable():
        try:
            down = await asyncio.wait_for(client.get("/health"), DOWN_ANSWER_TIMEOUT + 2)
        except asyncio.TimeoutError:
            down = None
    evidence = {"requests": requests_text([up] + ([down] if down else [])), "healthy_body": up.text[:300]}
    if down is None or down.error is not None or down.elapsed > DOWN_ANSWER_TIMEOUT:
        return failed(
            f"with Redis unreachable GET /health gave no answer within {DOWN_ANSWER_TIMEOUT:g} s (it hangs)",
            **evidence,
        )
    evidence["unhealthy_body"] = down.text[:300]
    if down.status == 500:
        return failed(
            "with Redis unreachable GET /health answered 500 (an unhandled error): catch the Redis error and "
            "answer 503 with the status (a rate-limit middleware that lets the Redis error escape causes this too)",
            **evidence,
        )
    if down.status == 200 and down.text == up.text:
        return failed("with Redis unreachable GET /health still reports healthy (same 200 answer)", **evidence)
    return passed(
        f"GET /health pings Redis (200 while up) and answers {down.status} while Redis is unreachable",
        **evidence,
    )
