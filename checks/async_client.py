"""The app uses the asyncio Redis client, so a slow Redis never stalls its event loop."""

from __future__ import annotations

from grader.checking import CheckContext, check
from grader.outcome import CheckOutcome, failed, passed
from grader.static import Finding

# Code outside the request path may use a synchronous client (a one-off seed script, the test suite).
NOT_REQUEST_PATH = ("tests/", "test_", "seed", "scripts/", "conftest")


def _in_request_path(finding: Finding) -> bool:
    return not any(part in finding.file for part in NOT_REQUEST_PATH)


def _where(findings: list[Finding]) -> list[str]:
    return [f"{f.file}:{f.line}: {f.text}" for f in findings]


@check("async.client", title="Uses redis.asyncio with decode_responses=True", level="basic")
async def client(ctx: CheckContext) -> CheckOutcome:
    facts = ctx.facts
    sync = [f for f in facts.sync_clients if _in_request_path(f)]
    if sync:
        return failed(
            f"a synchronous Redis client is built at {_where(sync)[0]}: it blocks the event loop; use redis.asyncio",
            sync_clients=_where(sync), async_clients=_where(facts.async_clients),
        )
    if not facts.async_clients:
        libraries = sorted(facts.libraries & {"fastapi_limiter", "cashews", "aiocache", "slowapi", "limits"})
        if libraries:
            return passed(f"Redis is used through {', '.join(libraries)}, which builds its own asyncio client",
                          libraries=libraries)
        return failed("no redis.asyncio client is built anywhere in the code", libraries=sorted(facts.libraries))
    # decode_responses is invisible on the wire; it is judged where the code builds its own client.
    undecoded = [f for f in facts.missing_decode_responses if _in_request_path(f)]
    if undecoded:
        return failed(
            f"the asyncio client at {_where(undecoded)[0]} is built without decode_responses=True: every reply "
            "comes back as bytes",
            async_clients=_where(facts.async_clients), without_decode_responses=_where(undecoded),
        )
    return passed(f"asyncio client with decode_responses=True at {_where(facts.async_clients)[0]}",
                  async_clients=_where(facts.async_clients))
