"""The grading's memo (grader/memo.py): one task per key, shared by every caller, cancelled only by close()."""

from __future__ import annotations

import asyncio

import pytest

from grader.memo import Memo


def test_every_caller_gets_the_result_of_one_run():
    async def scenario() -> tuple[list[int], int]:
        memo, runs = Memo(), []

        async def work() -> int:
            runs.append(1)
            await asyncio.sleep(0.01)
            return 42

        results = await asyncio.gather(memo.once("suite", work), memo.once("suite", work))
        later = await memo.once("suite", work)  # after the task ended: its result, not a new run
        await memo.close()
        return [*results, later], len(runs)

    assert asyncio.run(scenario()) == ([42, 42, 42], 1)


def test_different_keys_run_separately():
    async def scenario() -> list[str]:
        memo = Memo()

        async def work(name: str) -> str:
            return name

        results = [await memo.once(("suite", 150.0), lambda: work("a")),
                   await memo.once(("suite", 60.0), lambda: work("b"))]
        await memo.close()
        return results

    assert asyncio.run(scenario()) == ["a", "b"]


def test_the_exception_is_shared_and_not_run_again():
    async def scenario() -> tuple[list[BaseException | int], int]:
        memo, runs = Memo(), []

        async def work() -> int:
            runs.append(1)
            await asyncio.sleep(0.01)
            raise ValueError("the suite could not start")

        results = await asyncio.gather(memo.once("k", work), memo.once("k", work), return_exceptions=True)
        await memo.close()
        return results, len(runs)

    results, runs = asyncio.run(scenario())
    assert runs == 1 and all(isinstance(r, ValueError) and str(r) == "the suite could not start" for r in results)


def test_a_cancelled_waiter_leaves_the_task_to_the_others():
    async def scenario() -> str:
        memo, release = Memo(), asyncio.Event()

        async def work() -> str:
            await release.wait()
            return "done"

        first = asyncio.create_task(memo.once("k", work))
        second = asyncio.create_task(memo.once("k", work))
        await asyncio.sleep(0)  # both are waiting now
        first.cancel()  # its check timed out
        with pytest.raises(asyncio.CancelledError):
            await first
        release.set()
        result = await second
        await memo.close()
        return result

    assert asyncio.run(scenario()) == "done"


def test_close_cancels_what_still_runs_and_waits_for_it():
    async def scenario() -> list[str]:
        memo, events = Memo(), []

        async def work() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                events.append("cancelled")  # where ctx.run kills the student's process
                raise

        waiter = asyncio.create_task(memo.once("k", work))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert events == []  # the waiter's cancellation did not reach the task
        await memo.close()
        events.append("closed")
        with pytest.raises(RuntimeError, match="closed"):
            await memo.once("other", work)
        return events

    assert asyncio.run(scenario()) == ["cancelled", "closed"]


def test_close_drops_an_exception_nobody_awaited():
    async def scenario() -> None:
        memo = Memo()

        async def work() -> None:
            raise ValueError("nobody asked")

        waiter = asyncio.create_task(memo.once("k", work))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await memo.close()  # returns; does not raise the task's ValueError

    asyncio.run(scenario())
