"""A limiter burst that straddles a clock-minute boundary proves nothing (a minute-aligned window may reset in the
middle of it), so it is repeated from a fresh client. The repeat must start from an empty Redis too: a counter
shared by every client would otherwise still hold the first attempt's requests and refuse the repeat's first one."""

from __future__ import annotations

import pytest
from conftest import SUBMISSIONS

import checks.ratelimit
from grader.runner import GradeOptions, grade


@pytest.mark.parametrize("check_id", ["ratelimit.threshold", "ratelimit.atomic_under_load"])
def test_a_burst_repeated_after_a_minute_boundary_starts_from_an_empty_redis(
    check_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[float] = []

    def first_burst_crossed_a_minute(started: float) -> bool:
        asked.append(started)
        return len(asked) == 1

    monkeypatch.setattr(checks.ratelimit, "crossed_minute", first_burst_crossed_a_minute)
    options = GradeOptions(env="current", redis="local", only=("app.*", check_id))
    result = grade(SUBMISSIONS / "ratelimit-global", options)
    outcome = next(c for c in result["checks"] if c["id"] == check_id)
    assert len(asked) == 2  # the burst was repeated once
    # ratelimit-global counts every client on one key: both checks pass for it (as the catalogue says).
    assert outcome["outcome"] == "passed", outcome["message"]
