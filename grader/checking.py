"""The check plugin API: how a check declares itself, its settings, and what it is handed when it runs.

A check is an async function decorated with @check. It reads the app over HTTP (ctx.probe), Redis directly
(ctx.redis), the app's Redis commands (ctx.trace) and the code's static facts (ctx.facts), and returns a
CheckOutcome. It never starts processes itself: anything that must run the submission's code goes through ctx.run.
What it changes in the harness (latency, faults, reachability of Redis) it changes inside a scope of ctx.proxy,
which undoes it on the way out, whatever way that is (a return, an exception, a timeout). Work that several
checks need (the submission's own test suite) is done once per grading through ctx.once, each check judging the
shared result by its own rules.

Two flags tell the runner how a check may be scheduled (grader/schedule.py):
- `isolated`: it needs neither the app nor the Redis the app uses (ctx.probe, ctx.proxy and ctx.trace are off
  limits); the runner runs it in the background, beside the others, with ctx.redis and ctx.run pointing at a
  Redis of its own, and its commands at a low processor priority.
- `timing`: its verdict rests on time or concurrency; the runner runs it after the ordinary checks, with no other
  grading's timing check beside it (grader/machinelock.py). With `lock="measuring"` only the part inside
  `async with ctx.measuring():` is kept apart from them; what the check does before (fill a cache, learn a limit)
  runs beside them, and the wait for its turn counts neither towards its timeout nor its duration.

Check authors import all of this from grader.api.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from grader.memo import Memo
from grader.outcome import CheckOutcome

if TYPE_CHECKING:
    import redis.asyncio

    from grader.probe import Probe
    from grader.proxy import Command, Fault, RedisProxy, Trace
    from grader.registry import Registry
    from grader.sandbox import CompletedRun
    from grader.static import StaticFacts

LEVELS = ("basic", "advanced")
LOCKS = ("check", "measuring")  # how long a timing check holds the machine lock (Check.lock)
DEFAULT_TIMEOUT = 60.0

RunCommand = Callable[..., Awaitable["CompletedRun"]]


# ---- settings ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CheckSettings:
    """A check's settings: its table in the rubric, less what the rubric itself reads (points, sections, hint).

    Every check has a `timeout` (seconds; the check declares its default, a rubric may change it). A check with
    options of its own declares them in a subclass (`@check(..., settings=MySettings)`): the rubric's values are
    then checked against the fields' types when the rubric is loaded, and an option no field declares is an
    error. A check that declares no class finds any other option of its table, unchecked, in `options`."""

    timeout: float = DEFAULT_TIMEOUT
    options: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """A declared field, else an undeclared option, else `default`."""
        if name in {f.name for f in dataclasses.fields(self)} - {"options"}:
            return getattr(self, name)
        return self.options.get(name, default)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as the field's type says (a TOML array becomes a tuple), or ValueError naming `where`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint in (int, str, bool):
        if isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):
            return value
    elif origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            item = args[0] if args else Any
            items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
    else:
        return value  # a type this parser does not know: passed on as TOML gave it
    name = getattr(hint, "__name__", None) or str(hint)
    raise ValueError(f"{where} must be {'a list' if origin in (tuple, list) else name}, not {value!r}")


def build_settings(kind: type[CheckSettings], table: Mapping[str, Any], default_timeout: float,
                   where: str) -> CheckSettings:
    """The settings of one check from its rubric table (points/sections/hint already removed)."""
    hints = typing.get_type_hints(kind)
    declared = {f.name: f for f in dataclasses.fields(kind) if f.name != "options"}
    values: dict[str, Any] = {"timeout": default_timeout}
    undeclared = {}
    for name, value in table.items():
        if name in declared:
            values[name] = _coerce(value, hints[name], f"{where}.{name}")
        else:
            undeclared[name] = value
    if undeclared and kind is not CheckSettings:
        known = ", ".join(sorted(declared))
        raise ValueError(f"{where} has an option the check does not take: {min(undeclared)} (it takes: {known})")
    if values["timeout"] <= 0:
        raise ValueError(f"{where}.timeout must be positive")
    try:
        return kind(**values, options=undeclared)
    except TypeError as exc:  # a field without a default that the table does not set
        raise ValueError(f"{where}: {exc}") from None


# ---- the check's declaration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    level: str
    func: CheckFunction
    requires: tuple[str, ...] = field(default=())
    timeout: float = DEFAULT_TIMEOUT  # the default of settings.timeout
    isolated: bool = False
    timing: bool = False
    settings: type[CheckSettings] = CheckSettings
    decided_by_runner: bool = False  # app.starts: the runner's gate, never run as a function
    needs_app: bool = True  # False: judged from the code alone, so also when the app does not start
    requirement: str = ""  # what the assignment asks, in the student's words (grader assignment prints it)
    lock: str = "check"  # a timing check holds the machine lock for the whole "check", or only while "measuring"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"check {self.id}: level must be one of {LEVELS}")
        if self.lock not in LOCKS:
            raise ValueError(f"check {self.id}: lock must be one of {LOCKS}")
        if self.lock == "measuring" and not self.timing:
            raise ValueError(f'check {self.id}: lock="measuring" is for timing checks (timing=True)')

    @property
    def category(self) -> str:
        return self.id.split(".", 1)[0]

    def settings_for(self, table: Mapping[str, Any]) -> CheckSettings:
        return build_settings(self.settings, table, self.timeout, f'[checks."{self.id}"]')


CheckFunction = Callable[["CheckContext"], Awaitable[CheckOutcome]]


def check(
    id: str,
    *,
    title: str,
    level: str,
    requires: tuple[str, ...] = (),
    timeout: float = DEFAULT_TIMEOUT,
    isolated: bool = False,
    timing: bool = False,
    settings: type[CheckSettings] = CheckSettings,
    needs_app: bool = True,
    requirement: str = "",
    lock: str = "check",
) -> Callable[[CheckFunction], CheckFunction]:
    """Declare a check. The function stays a plain function; its declaration rides on it as `__check__`, where a
    Registry finds it when it loads the function's module.

    `requires`: checks that must pass first, or this one is skipped saying which failed. `timeout`: the default
    of settings.timeout. `isolated` and `timing`: how the runner may schedule it (see the module's docstring).
    `settings`: the dataclass (a CheckSettings) its rubric table fills. `needs_app=False`: the check reads only
    the code (ctx.facts, ctx.run), so it is judged even when the app does not start. `requirement`: the rule
    the check grades, stated for the student (the published assignment is generated from it). `lock="measuring"`:
    a timing check holds the machine lock only inside `async with ctx.measuring():`, not for the whole check."""
    declared = Check(id, title, level, _not_yet, tuple(requires), float(timeout), isolated, timing, settings,
                     needs_app=needs_app, requirement=requirement, lock=lock)

    def declare(func: CheckFunction) -> CheckFunction:
        func.__check__ = dataclasses.replace(declared, func=func)  # type: ignore[attr-defined]
        return func

    return declare


def decided_by_runner(id: str, *, title: str, level: str, requirement: str = "") -> Check:
    """A check the runner decides itself (app.starts, its gate), declared so rubrics and reports know its title.
    Assign it to a module-level name: the Registry collects it like a decorated function."""
    return Check(id, title, level, _never_run, decided_by_runner=True, requirement=requirement)


@asynccontextmanager
async def _holding_nothing() -> typing.AsyncIterator[None]:
    yield


async def _not_yet(ctx: CheckContext) -> CheckOutcome:
    raise RuntimeError("@check's placeholder: replaced by the decorated function")


async def _never_run(ctx: CheckContext) -> CheckOutcome:
    raise RuntimeError("this check is decided by the runner")


def declared_check(item: object) -> Check | None:
    """The Check an object declares: a Check itself, or a function decorated with @check."""
    if isinstance(item, Check):
        return item
    found = getattr(item, "__check__", None) if callable(item) else None
    return found if isinstance(found, Check) else None


# ---- what a check may change, in scopes that undo it ---------------------------------------------------------


class ProxyControl:
    """The part of the Redis proxy (in front of the app's Redis) a check may use. Every change is a scope:

        with ctx.proxy.latency(0.1): ...        # every round trip delayed by 0.1 s
        with ctx.proxy.fault(Fault(...)): ...   # matching commands answered with an error, never forwarded
        with ctx.proxy.unreachable(): ...       # connections closed and refused: Redis is down for the app

    Leaving the block undoes the change, also when the check is cancelled (its timeout) or raises."""

    def __init__(self, proxy: RedisProxy) -> None:
        self._proxy = proxy
        self._went_down = False  # since the runner last asked: see took_redis_down()

    @contextmanager
    def latency(self, seconds: float) -> Iterator[None]:
        previous = self._proxy.latency
        self._proxy.latency = seconds
        try:
            yield
        finally:
            self._proxy.latency = previous

    @contextmanager
    def fault(self, fault: Fault) -> Iterator[None]:
        handle = self._proxy.add_fault(fault)
        try:
            yield
        finally:
            self._proxy.remove_fault(handle)  # a no-op when the fault used up its `times` already

    def took_redis_down(self) -> bool:
        """Whether a check made Redis unreachable since the last call (for the runner, which then lets the app's
        connections heal before the next check)."""
        went_down, self._went_down = self._went_down, False
        return went_down

    @contextmanager
    def unreachable(self) -> Iterator[None]:
        self._went_down = True
        self._proxy.set_reachable(False)
        try:
            yield
        finally:
            self._proxy.set_reachable(True)


class Recording(Sequence["Command"]):
    """The commands the app sent Redis since the recording began: live inside the `with` block (each read sees
    what has arrived so far), fixed once the block is left."""

    def __init__(self, trace: Trace) -> None:
        self._trace = trace
        self._mark = trace.mark()
        self._fixed: list[Command] | None = None

    def _commands(self) -> list[Command]:
        return self._fixed if self._fixed is not None else self._trace.since(self._mark)

    def stop(self) -> None:
        if self._fixed is None:
            self._fixed = self._trace.since(self._mark)

    @overload
    def __getitem__(self, index: int) -> Command: ...

    @overload
    def __getitem__(self, index: slice) -> list[Command]: ...

    def __getitem__(self, index: int | slice) -> Command | list[Command]:
        return self._commands()[index]

    def __len__(self) -> int:
        return len(self._commands())

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands())  # one copy, read at the start of the iteration

    def __repr__(self) -> str:
        return f"Recording({len(self)} commands{'' if self._fixed is not None else ', live'})"


class TraceView:
    """Read-only: the commands the app sent its Redis (through the proxy), in the order they arrived."""

    def __init__(self, trace: Trace) -> None:
        self._trace = trace

    def all(self) -> list[Command]:
        """Everything since the app started (its startup work included)."""
        return self._trace.all()

    @contextmanager
    def recording(self) -> Iterator[Recording]:
        """`with ctx.trace.recording() as seen:` - `seen` holds the commands sent inside the block."""
        recording = Recording(self._trace)
        try:
            yield recording
        finally:
            recording.stop()


class Unavailable:
    """Stands for what an isolated check must not use (the app, its Redis): any use says so."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probing for hooks
            raise AttributeError(name)
        raise RuntimeError(f"{self._what} is not available to an isolated check")


# ---- what a check is handed ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmissionFiles:
    root: Path  # the grader's private copy of the submission (read it; never import or run it from here)
    app_dir: Path  # where the app runs from (its imports resolve from here)
    app_module: str = ""  # the app's module ("app.main"), as uvicorn imports it from app_dir


SettingsT = TypeVar("SettingsT", bound=CheckSettings)
T = TypeVar("T")


@dataclass(frozen=True)
class CheckContext(Generic[SettingsT]):
    """What a check is handed. A check with a settings class of its own types its parameter with it,
    `ctx: CheckContext[MySettings]`, so that `ctx.settings.my_option` is typed."""

    probe: Probe  # HTTP to the app, each VirtualClient from its own address
    redis: redis.asyncio.Redis  # the harness's own connection, straight to Redis: never in the trace
    proxy: ProxyControl  # latency, faults and reachability of the app's Redis, in scopes
    trace: TraceView  # the commands the app sent its Redis
    facts: StaticFacts  # what the code says, read with ast
    workspace: SubmissionFiles
    openapi: dict[str, Any]  # the app's own /openapi.json ({} when it has none)
    settings: SettingsT  # this check's table in the rubric, typed by the check's settings class
    # Runs a command in the submission's environment (its Python first on PATH, REDIS_URL set), sandboxed:
    # await ctx.run(argv, timeout=..., env=None, cwd=None) -> CompletedRun.
    run: RunCommand
    python: str  # the submission environment's interpreter, for ctx.run([ctx.python, "-m", ...])
    app_log: Callable[[int], str] = field(default=lambda lines: "")  # the last lines of the app's own output
    # One per grading, shared by every check's copy of the context: use it through ctx.once.
    memo: Memo = field(default_factory=Memo, repr=False)
    # `async with ctx.measuring():` the part of a timing check declared lock="measuring" whose verdict rests on time:
    # no other grading's timing check runs meanwhile. Elsewhere it holds nothing.
    measuring: Callable[[], AbstractAsyncContextManager[None]] = field(default=_holding_nothing, repr=False)

    @property
    def app_dir(self) -> Path:
        return self.workspace.app_dir

    async def once(self, key: Hashable, factory: Callable[[], Awaitable[T]]) -> T:
        """`await factory()`, done once per grading for `key`: the first check to ask starts it, every other
        check asking with the same key (also at the same time, from another background lane) awaits that same
        run and gets its result or its exception. Put in the key everything the work depends on (a timeout, an
        option): checks that ask with different settings get separate runs. The work runs with the first
        caller's context (its ctx.run, its Redis), so it must not depend on which check asked. A check that times
        out while it waits does not stop the work for the others; what still runs when the grading ends is
        cancelled (a process started with ctx.run is killed)."""
        return await self.memo.once(key, factory)


def load_checks() -> Registry:
    """The built-in checks plus any installed plugin's (a grader.registry.Registry)."""
    from grader.registry import Registry

    return Registry.load()
