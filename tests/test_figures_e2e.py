"""From a real grading to the picture: the fixtures `reference` (a Lua limiter) and `ratelimit-get-set` (GET, then
SET: a race) graded on ratelimit.atomic_under_load alone, their HTML report loaded in headless Chromium, and the
race picture read from the DOM: its served lanes are the count the check's message states, and the racy
limiter's exceed the expected count."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from conftest import SUBMISSIONS
from figures_kit import load

from grader.reporters import render_html
from grader.runner import GradeOptions, grade

CHECK = "ratelimit.atomic_under_load"
# The check and what it needs: the app must start and use REDIS_URL.
ONLY = (CHECK, "app.starts", "app.uses_redis_url")

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@cache
def graded(name: str) -> dict:
    return grade(SUBMISSIONS / name, GradeOptions(env="current", redis="local", start_timeout=8, only=ONLY))


def served_in_message(message: str) -> int:
    """"50 concurrent requests from 10.0.0.7 (50 in flight at once): 14 served, ..." -> 14."""
    match = re.search(r"\): (\d+) served", message)
    assert match, message
    return int(match.group(1))


@pytest.mark.parametrize("name", ["reference", "ratelimit-get-set"])
def test_race_picture_of_a_real_grading(name: str, tmp_path: Path, no_leftovers: None) -> None:
    result = graded(name)
    assert result["status"] == "graded", result.get("error")
    record = next(c for c in result["checks"] if c["id"] == CHECK)
    assert record["outcome"] == ("passed" if name == "reference" else "failed"), record["message"]
    assert record.get("figure") and record["figure"]["kind"] == "race", "the check returned no race figure"
    picture = load(render_html(result), f"e2e-{name}", tmp_path, height=3000).pictures[CHECK]
    lanes = picture.with_class("lane")
    assert len(lanes) == len(record["figure"]["requests"])
    served_lanes = sum(1 for n in lanes if n.attrs["data-status"].startswith("2"))
    assert served_lanes == served_in_message(record["message"]) == int(picture.svg.attrs["data-served"])
    expected = int(picture.svg.attrs["data-expected-served"])
    if name == "reference":
        assert served_lanes == expected
    else:
        assert served_lanes > expected
        assert [n for n in picture.with_class("command") if n.attrs.get("data-same-reply")], \
            "no GETs that read the same count are marked"
