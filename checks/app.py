"""The app starts, and talks to the Redis the harness gave it."""

from __future__ import annotations

import re
from typing import Any

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
starts = decided_by_runner("app.starts", title="The app starts and answers HTTP", level="basic", requirement="The app starts with `uvicorn` (from `backend/`: `uvicorn app.main:app`) and answers HTTP; its requirements file lists everything it imports, `pytest` included")

CONTRACT_GETS = ("/health", "/products", "/top")
MAX_ROUTES = 12  # parameterless GET routes exercised before concluding the app never talks to Redis
DOCS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


def parameterless_gets(openapi: dict[str, Any]) -> list[str]:
    """The contract's GET routes, then every other GET route the app declares that needs no path parameter and
    no required query parameter: the routes a first request can reach."""
    routes = list(CONTRACT_GETS)
    for path, operations in (openapi.get("paths") or {}).items():
        get = (operations or {}).get("get")
        if not isinstance(get, dict) or "{" in path or path in DOCS or path in routes:
            continue
        if any(p.get("required") for p in get.get("parameters") or [] if isinstance(p, dict)):
            continue
        routes.append(path)
    return routes[:MAX_ROUTES]


@check("app.uses_redis_url", title="The app talks to the Redis given in REDIS_URL", level="basic",
       requirement="It connects to the Redis named in the `REDIS_URL` environment variable (no hard-coded address, no committed `.env` that overrides it)")
async def uses_redis_url(ctx: CheckContext) -> CheckOutcome:
    client = ctx.probe.client()
    replies = []
    # Everything since the app started counts: startup work (SCRIPT LOAD, PING) reaches Redis too. The app's
    # Redis traffic may happen on any route, so each parameterless GET route is tried before concluding.
    for path in parameterless_gets(ctx.openapi):
        replies.append(await client.get(path))
        seen = ctx.trace.all()
        if seen:
            tried = ", ".join(r.path for r in replies)
            return passed(
                f"{len(seen)} Redis commands reached the harness's Redis through REDIS_URL (after GET {tried})",
                redis=commands_text(seen, limit=5),
            )
    hardcoded = [f"{f.file}:{f.line}: {f.text}" for f in ctx.facts.redis_urls]
    tried = ", ".join(r.path for r in replies)
    dotenv = _committed_dotenv(ctx)
    connection_error = _connection_error(ctx.app_log(300))
    evidence: dict[str, Any] = {"requests": requests_text(replies), "hardcoded_addresses": hardcoded,
                                "reads_REDIS_URL": ctx.facts.reads_redis_url_env}
    if connection_error:
        evidence["app_log"] = connection_error
    overrides = [f"{f.file}:{f.line}: {f.text}" for f in ctx.facts.dotenv_overrides]
    if hardcoded:
        cause = f": it connects to an address written in the code ({hardcoded[0]})"
        evidence["where"] = hardcoded
    elif dotenv and overrides:
        cause = (f": the committed {dotenv} is loaded with load_dotenv(override=True) ({overrides[0]}), which "
                 "replaces the REDIS_URL the app is given")
        evidence["where"] = overrides
    elif not ctx.facts.reads_redis_url_env:
        cause = ": the code never reads REDIS_URL"
    else:
        cause = (", though the code reads REDIS_URL: the address it connects to comes from elsewhere (a module "
                 "constant, a settings default, another variable)")
    seen = f"; the app's log says: {connection_error[0]}" if connection_error else ""
    return failed(f"no Redis traffic on GET {tried} nor at startup{cause}{seen}", **evidence)


_CONNECTION_ERROR = re.compile(r"Error \d+ connecting to [^\s]+[^\n]{0,160}|Connection refused[^\n]{0,120}")


def _connection_error(log: str) -> list[str]:
    """The app's own words for a failed Redis connection (`Error 111 connecting to localhost:6379. ...`)."""
    found = list(dict.fromkeys(m.group(0).strip() for m in _CONNECTION_ERROR.finditer(log)))
    return found[:3]


def _committed_dotenv(ctx: CheckContext) -> str | None:
    """'backend/.env (REDIS_URL=...)' for a committed .env next to the app or at the root that sets REDIS_URL."""
    for folder in dict.fromkeys((ctx.app_dir, ctx.workspace.root)):
        path = folder / ".env"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        setting = next((line.strip() for line in lines if line.strip().startswith("REDIS_URL")), None)
        if setting:
            return f"{path.relative_to(ctx.workspace.root).as_posix()} ({setting})"
    return None
