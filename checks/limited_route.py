"""Where the limiter checks send their requests: GET /products, or - when the app does not have it - another GET
route it declares that needs no parameter (the limiter guards every route). With none, one check fails with the
route message and the others skip for it: one defect, one deduction."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from grader.api import CheckContext, CheckOutcome, declared_routes, failed, missing_route, openapi_operation, skipped

ROUTE = "/products"  # the limiter guards every route; one route is enough, and a per-route limiter guards this one


@dataclass(frozen=True)
class LimitedRoute:
    """The path the limiter checks send their requests to, and why that one."""

    path: str | None  # None: the app declares no GET route a request without parameters can reach
    absent: str | None = None  # "GET /products is not a route; the app has: ..." when the app lacks ROUTE

    @property
    def note(self) -> str | None:
        """Evidence naming the stand-in route, when it is not ROUTE."""
        if self.path is None or self.absent is None:
            return None
        return f"GET {self.path} ({self.absent}; the limiter guards every route, so it is tried on this one)"


def _plain_get(openapi: dict[str, Any], route: str) -> str | None:
    """The path of a declared 'GET /x' a request with no parameter and no body can reach, else None."""
    method, _, path = route.partition(" ")
    if method != "GET" or "{" in path:
        return None
    operation = openapi_operation(openapi, "get", path) or {}
    needs = [p for p in operation.get("parameters") or [] if isinstance(p, dict) and p.get("required")]
    return None if needs or (operation.get("requestBody") or {}).get("required") else path


def limited_route(openapi: dict[str, Any]) -> LimitedRoute:
    """ROUTE when the app has it (or publishes no schema), else another plain GET route it declares - a
    health route last, since a limiter may rightly leave it out."""
    absent = missing_route(openapi, "get", ROUTE)
    if absent is None:
        return LimitedRoute(ROUTE)
    paths = [p for p in (_plain_get(openapi, r) for r in declared_routes(openapi)) if p is not None]
    paths.sort(key=lambda p: "health" in p.lower())
    return LimitedRoute(paths[0] if paths else None, absent)


LimiterCheck = Callable[[CheckContext, str], Awaitable[CheckOutcome]]


def on_limited_route(*, judges_absence: bool = False) -> Callable[[LimiterCheck], Callable[..., Awaitable[CheckOutcome]]]:
    """Put under @check: the check is handed the path of limited_route(). With no usable route one check
    (`judges_absence`) fails with the route message and the others skip for that reason: one defect, one
    deduction."""

    def decorate(func: LimiterCheck) -> Callable[..., Awaitable[CheckOutcome]]:
        @functools.wraps(func)
        async def run(ctx: CheckContext) -> CheckOutcome:
            route = limited_route(ctx.openapi)
            if route.path is None:
                assert route.absent is not None
                if judges_absence:
                    return failed(f"{route.absent}, and no other GET route without parameters to try the limiter "
                                  "on", routes=declared_routes(ctx.openapi))
                return skipped(f"{route.absent} (see ratelimit.threshold)")
            outcome = await func(ctx, route.path)
            if route.note:
                outcome.evidence = {"route": route.note, **outcome.evidence}
            return outcome

        return run

    return decorate
