"""The app's own sequential limit is measured once per grading (checks/ratelimit.py, ctx.once): ratelimit.per_ip
measures it, and ratelimit.atomic_under_load, in the timing phase, judges its burst against that measurement
instead of sending the sequential requests again; alone (--only) it measures it itself. Graded for real (the
reference app on a local Redis)."""

from __future__ import annotations

import re

import pytest
from conftest import SUBMISSIONS

from grader.runner import GradeOptions, grade

pytestmark = pytest.mark.slow

ATOMIC = "ratelimit.atomic_under_load"


def _checks(only: tuple[str, ...]) -> dict[str, dict]:
    result = grade(SUBMISSIONS / "reference", GradeOptions(env="current", redis="local", only=only))
    return {c["id"]: c for c in result["checks"]}


def _sequential_ip(atomic: dict) -> str:
    found = re.search(r"\(from (\S+), one request at a time\)", atomic["evidence"]["sequential"])
    assert found, atomic["evidence"]
    return found.group(1)


def test_the_timing_phase_reuses_the_limit_per_ip_measured(no_leftovers: None) -> None:
    seen = _checks(("ratelimit.per_ip", ATOMIC))
    assert seen["ratelimit.per_ip"]["outcome"] == "passed" and seen[ATOMIC]["outcome"] == "passed", seen
    blocked = re.search(r"while (\S+) was blocked", seen["ratelimit.per_ip"]["message"])
    assert blocked, seen["ratelimit.per_ip"]["message"]
    assert _sequential_ip(seen[ATOMIC]) == blocked.group(1)


def test_alone_the_atomic_check_measures_the_limit_itself(no_leftovers: None) -> None:
    atomic = _checks((ATOMIC,))[ATOMIC]
    assert atomic["outcome"] == "passed", atomic
    assert atomic["evidence"]["sequential"].startswith("10 served, then 429"), atomic["evidence"]
