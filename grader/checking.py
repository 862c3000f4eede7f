"""The check plugin API: how a check declares itself and what it is handed when it runs.

A check is an async function decorated with @check. It reads the app over HTTP (ctx.probe), Redis directly
(ctx.redis), the app's Redis commands (ctx.proxy.trace) and the code's static facts (ctx.facts), and returns a
CheckOutcome. It never starts processes itself: anything that must run the submission's code goes through ctx.run.

Two flags tell the runner how a check may be scheduled (grader/schedule.py):
- `isolated`: it needs neither the app nor the Redis the app uses (ctx.probe and ctx.proxy are off limits); the
  runner runs it in the background, beside the others, with ctx.redis and ctx.run pointing at a Redis of its own.
- `timing`: its verdict rests on time or concurrency; the runner runs it last, with nothing running beside it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.outcome import CheckOutcome

if TYPE_CHECKING:
    import redis.asyncio

    from grader.probe import Probe
    from grader.proxy import RedisProxy
    from grader.sandbox import CompletedRun
    from grader.services import RedisServer
    from grader.static import StaticFacts
    from grader.workspace import Workspace

LEVELS = ("basic", "advanced")
PLUGIN_GROUP = "redis_grader.checks"


RunCommand = Callable[..., Awaitable["CompletedRun"]]


@dataclass
class CheckContext:
    probe: Probe
    redis: redis.asyncio.Redis  # the harness's own connection, straight to Redis: never in the trace
    proxy: RedisProxy
    server: RedisServer
    facts: StaticFacts
    workspace: Workspace
    openapi: dict[str, Any]
    settings: dict[str, Any]  # this check's table in the rubric (points, sections, and any options of its own)
    # Runs a command in the submission's environment (its Python first on PATH, REDIS_URL set), sandboxed.
    run: RunCommand
    python: str  # the submission environment's interpreter
    app_dir: Path  # where the app runs from


CheckFunction = Callable[[CheckContext], Awaitable[CheckOutcome]]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    level: str
    func: CheckFunction
    requires: tuple[str, ...] = field(default=())
    timeout: float = 60.0
    isolated: bool = False
    timing: bool = False

    @property
    def category(self) -> str:
        return self.id.split(".", 1)[0]


_REGISTRY: dict[str, Check] = {}


def check(
    id: str,
    *,
    title: str,
    level: str,
    requires: tuple[str, ...] = (),
    timeout: float = 60.0,
    isolated: bool = False,
    timing: bool = False,
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check. `requires`: checks that must pass first, or this one is skipped saying which failed.
    `isolated` and `timing`: how the runner may schedule it (see the module's docstring)."""
    if level not in LEVELS:
        raise ValueError(f"check {id}: level must be one of {LEVELS}")

    def register(func: CheckFunction) -> CheckFunction:
        _REGISTRY[id] = Check(id, title, level, func, tuple(requires), timeout, isolated, timing)
        return func

    return register


def register_static(id: str, *, title: str, level: str) -> None:
    """A catalogue entry that the runner decides itself (app.starts), so rubrics and reports know its title."""
    _REGISTRY[id] = Check(id, title, level, _decided_by_runner)


async def _decided_by_runner(ctx: CheckContext) -> CheckOutcome:
    raise RuntimeError("this check is decided by the runner")


def load_checks() -> dict[str, Check]:
    """The built-in checks (every module of the `checks` package) plus any installed plugin modules."""
    import checks

    for module in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"checks.{module.name}")
    for plugin in entry_points(group=PLUGIN_GROUP):
        plugin.load()
    return dict(_REGISTRY)
