"""grader/machinelock.py: one timing check at a time on the machine. Real flock on a real file,
held by another process (as another grading would), no clocks."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from conftest import own_rubric

from grader import checkrun, machinelock
from grader.api import CheckContext, CheckOutcome, Registry, check, passed
from grader.checkrun import _within
from grader.runner import GradeOptions, grade

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "submissions" / "reference"
# Longer than the measuring test check's timeout (0.5 s, no grace), which the wait for the lock must not count.
WAIT_LONGER_THAN_TIMEOUT_S = 2.0


def _hold(path: str, locked, release, hold_s: float, gone=None) -> None:  # type: ignore[no-untyped-def]
    with machinelock.machine_lock(Path(path)):
        locked.set()
        release.wait(hold_s)
    if gone is not None:
        gone.set()


def _start_holder(path: Path, hold_s: float = 60,
                  gone: Event | None = None) -> tuple[multiprocessing.process.BaseProcess, Event, Event]:
    """Another process (as another grading would be) that takes the machine lock: `locked` is set once it holds
    it, and it lets go when `release` is set (or after `hold_s`), then sets `gone`."""
    ctx = multiprocessing.get_context("fork")
    locked, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), locked, release, hold_s, gone))
    holder.start()
    return holder, locked, release


def test_lock_path_is_per_user_and_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(machinelock.LOCK_VAR, raising=False)
    assert f"redis-grader-{os.getuid()}" in str(machinelock.lock_path())
    monkeypatch.setenv(machinelock.LOCK_VAR, str(tmp_path / "t.lock"))
    assert machinelock.lock_path() == tmp_path / "t.lock"


def test_the_timing_phase_waits_for_the_holder_and_others_go_on(tmp_path: Path) -> None:
    path = tmp_path / "timing.lock"
    holder, locked, release = _start_holder(path)
    try:
        assert locked.wait(30)
        order: list[str] = []

        async def timing() -> None:
            async with machinelock.timing_phase(path):
                order.append("timing phase")

        async def ordinary() -> None:
            for _ in range(3):  # the event loop keeps running other work while the timing phase waits
                await asyncio.sleep(0)
            order.append("ordinary check")
            release.set()  # the other grading finishes its timing phase

        async def both() -> None:
            await asyncio.gather(timing(), ordinary())

        asyncio.run(both())
        assert order == ["ordinary check", "timing phase"]
    finally:
        release.set()
        holder.join(30)


def test_a_killed_holder_never_leaves_the_lock_held(tmp_path: Path) -> None:
    path = tmp_path / "timing.lock"
    holder, locked, _ = _start_holder(path)
    assert locked.wait(30)
    fd = os.open(path, os.O_RDWR)
    try:
        assert not machinelock.try_acquire(fd)
        holder.kill()
        holder.join(30)
        assert machinelock.try_acquire(fd)
    finally:
        os.close(fd)


def test_a_cancelled_wait_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "timing.lock"

    async def scenario() -> None:
        with machinelock.machine_lock(path):
            waiter = asyncio.create_task(_enter(path))
            await asyncio.sleep(0.2)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with machinelock.timing_phase(path):  # free again: nobody took it for the cancelled wait
            pass

    asyncio.run(scenario())


async def _enter(path: Path) -> None:
    async with machinelock.timing_phase(path):
        raise AssertionError("entered while another held the lock")


def test_timing_phases_run_one_after_another(tmp_path: Path) -> None:
    path = tmp_path / "timing.lock"
    order: list[str] = []

    async def timing(name: str) -> None:
        async with machinelock.timing_phase(path):
            order.append(f"{name} starts")
            await asyncio.sleep(0.05)  # the other phase asks meanwhile and must wait
            order.append(f"{name} ends")

    async def scenario() -> None:
        await asyncio.gather(timing("first"), timing("second"))

    asyncio.run(scenario())
    assert order in (["first starts", "first ends", "second starts", "second ends"],
                     ["second starts", "second ends", "first starts", "first ends"])


def test_only_the_timing_phase_waits_for_the_lock(tmp_path: Path) -> None:
    """While another grading holds the machine lock, a grading's ordinary checks (here the app's Redis URL and its
    health route) and isolated checks (ruff) still run to the end: only a timing phase waits for the lock. The
    isolated checks use nothing another check uses and yield the processor (grader/schedule.py); the ordinary ones
    weigh on the machine less than the busy core the timing checks are proven under (grader/machinelock.py)."""
    path = tmp_path / "timing.lock"
    holder, locked, release = _start_holder(path, hold_s=900)  # longer than the bound below: waiting would fail
    try:
        assert locked.wait(30)
        env = {**os.environ, machinelock.LOCK_VAR: str(path)}
        out = tmp_path / "result.json"
        # A bound only so that a regression fails instead of hanging: the grading itself never waits for the lock.
        done = subprocess.run(
            [sys.executable, "-m", "grader", "check", str(REFERENCE), "--env", "current", "--redis", "local",
             "--runtime", "local", "--only", "quality.lint", "--only", "app.uses_redis_url", "--only",
             "health.redis_ping", "--json", str(out)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        assert done.returncode == 0, done.stderr
        outcomes = {c["id"]: c["outcome"] for c in json.loads(out.read_text())["checks"]}
        assert {outcomes[c] for c in ("quality.lint", "app.uses_redis_url", "health.redis_ping")} == {"passed"}, \
            outcomes
    finally:
        release.set()
        holder.join(30)


def _held(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        return not machinelock.try_acquire(fd)  # a second description of the file: taken while anyone holds it
    finally:
        os.close(fd)


def test_a_check_declared_lock_measuring_holds_the_lock_only_while_it_measures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leftovers: None
) -> None:
    """Graded for real (the reference app, a local Redis) with two test timing checks while another process holds
    the lock: the one declared lock="measuring" starts at once (the lock still held elsewhere), has the other
    process let go a while later, then holds the lock inside ctx.measuring() (re-entrant: a nested block does not
    wait for itself); the whole-check one holds it from its start. The wait is longer than the measuring check's
    timeout, which it must not count, nor its duration."""
    path = tmp_path / "timing.lock"
    monkeypatch.setenv(machinelock.LOCK_VAR, str(path))
    monkeypatch.setattr(checkrun, "REPORT_GRACE_S", 0.0)
    # A runner that made this check wait for the lock from its start would wait until the holder gives up (60 s),
    # and the check would then see nobody holding it: a regression fails, it does not hang.
    gone = multiprocessing.get_context("fork").Event()
    holder, locked, release = _start_holder(path, hold_s=60, gone=gone)
    seen: dict[str, bool] = {}

    def held() -> bool:
        return _held(path)

    @check("test.measuring", title="measures a part", level="advanced", timing=True, lock="measuring")
    async def measures_a_part(ctx: CheckContext) -> CheckOutcome:
        seen["held_elsewhere_before_measuring"] = held() and not gone.is_set()
        threading.Timer(WAIT_LONGER_THAN_TIMEOUT_S, release.set).start()  # the other grading's timing check ends
        async with ctx.measuring():
            seen["holder_gone"] = await asyncio.to_thread(gone.wait, 30)
            seen["held_while_measuring"] = held()  # the other process let go: held by this check
            async with ctx.measuring():
                seen["nested"] = True
        return passed("measured")

    @check("test.whole", title="measures all of it", level="advanced", timing=True)
    async def measures_all(ctx: CheckContext) -> CheckOutcome:
        seen["held_for_the_whole_check"] = held()
        return passed("measured")

    try:
        assert locked.wait(30)
        registry = Registry.load(plugins=False)
        registry.add(measures_a_part)
        registry.add(measures_all)
        rubric = tmp_path / "rubric.toml"
        rubric.write_text(own_rubric("measuring-test", '[checks."test.measuring"]\npoints = 10\ntimeout = 0.5\n'
                                                       '[checks."test.whole"]\npoints = 10\n'))
        result = grade(REFERENCE, GradeOptions(rubric=str(rubric), redis="local", env="current"),
                       registry=registry.validate())
    finally:
        release.set()
        holder.join(30)
    checks = {c["id"]: c for c in result["checks"]}
    assert checks["test.measuring"]["outcome"] == checks["test.whole"]["outcome"] == "passed", result["checks"]
    assert checks["test.measuring"]["duration_s"] < WAIT_LONGER_THAN_TIMEOUT_S, checks["test.measuring"]
    assert seen == {"held_elsewhere_before_measuring": True, "holder_gone": True, "held_while_measuring": True,
                    "nested": True, "held_for_the_whole_check": True}


def test_the_measuring_lock_is_let_go_by_the_last_block_out(tmp_path: Path) -> None:
    """Re-entrant across a check's tasks: the first block in takes the lock, the last one out lets it go."""
    path = tmp_path / "timing.lock"
    lock = machinelock.MeasuringLock(path)

    async def scenario() -> list[bool]:
        inner_in, outer_out = asyncio.Event(), asyncio.Event()
        states: list[bool] = []

        async def inner() -> None:
            async with lock():
                inner_in.set()
                await outer_out.wait()
                states.append(_held(path))  # the outer block is gone, this one still holds it

        task = asyncio.create_task(inner())
        async with lock():
            await inner_in.wait()
        outer_out.set()
        await task
        states.append(_held(path))  # both gone: free
        async with lock():  # and taken again by the next block
            states.append(_held(path))
        return states

    assert asyncio.run(scenario()) == [True, False, True]


def test_waiting_for_the_lock_is_not_a_checks_time() -> None:
    """checkrun._within: the clock of a check's timeout stops while it waits for the lock (`paused()` grows)."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await _within(asyncio.sleep(0.3, "done"), 0.05, lambda: loop.time() - started) == "done"
        with pytest.raises(asyncio.TimeoutError):
            await _within(asyncio.sleep(30), 0.05, lambda: 0.0)

    asyncio.run(scenario())


def test_lock_measuring_is_for_timing_checks_only() -> None:
    async def judge(ctx: CheckContext) -> CheckOutcome:
        return passed("never run")

    with pytest.raises(ValueError, match="timing=True"):
        check("test.not_timing", title="t", level="basic", lock="measuring")(judge)
    with pytest.raises(ValueError, match="lock must be one of"):
        check("test.odd", title="t", level="basic", timing=True, lock="phase")(judge)
