"""Rubric maths and rubric loading: pure logic, no processes."""

from __future__ import annotations

import pytest

from grader import rubric as rubrics
from grader.api import Outcome, Registry, error, failed, passed, skipped
from grader.errors import UsageError

CHECKS = Registry.load(plugins=False)
KNOWN = set(CHECKS)
SHIPPED = rubrics.load("redis-module", CHECKS)  # with the checks: their settings are checked too


def all_passed() -> dict:
    return {e.check_id: passed("ok") for e in SHIPPED.entries}


def test_shipped_rubric_totals_100_and_names_every_catalogue_check():
    assert sum(e.points for e in SHIPPED.entries) == 100
    assert {e.check_id for e in SHIPPED.entries} == KNOWN
    assert all(e.sections and e.hint for e in SHIPPED.entries)


def test_everything_passed_is_s():
    total = rubrics.score(SHIPPED, all_passed())
    assert (total.score, total.grade) == (100.0, "S")


def test_basic_only_submission_lands_in_b_or_c():
    outcomes = {
        e.check_id: passed("ok") if CHECKS[e.check_id].level == "basic" else failed("no") for e in SHIPPED.entries
    }
    assert rubrics.score(SHIPPED, outcomes).grade in ("B", "C")


@pytest.mark.parametrize(("score", "grade"), [(100, "S"), (90, "S"), (89.99, "A"), (80, "A"), (79.5, "B"),
                                              (70, "B"), (69.99, "C"), (0, "C")])
def test_grade_bands(score, grade):
    assert SHIPPED.grade_for(score) == grade


def test_failed_error_and_skipped_earn_nothing_but_count_in_the_max():
    outcomes = all_passed()
    outcomes["ratelimit.lua"] = failed("no lua")
    outcomes["cache.stampede"] = error("harness could not decide")
    outcomes["cache.ttl"] = skipped("needs cache.populates")
    total = rubrics.score(SHIPPED, outcomes)
    assert total.points == 100 - 6 - 5 - 5 and total.max_points == 100


def test_not_applicable_skip_leaves_the_max():
    outcomes = all_passed()
    outcomes["quality.tests"] = skipped("no tests of its own", applicable=False)
    outcomes["ratelimit.lua"] = failed("no lua")
    total = rubrics.score(SHIPPED, outcomes)
    assert total.max_points == 98 and total.points == 92
    assert total.score == pytest.approx(round(100 * 92 / 98, 2))


def test_remediation_links_follow_docs_url():
    entry = SHIPPED.entry("cache.ttl")
    links = [link for link in SHIPPED.remediation(entry, "https://course.example/book/") if "id" in link]
    assert links[0]["url"] == "https://course.example/book/r2-ttl#expiration"
    assert links[0]["title"].startswith("R2.1 ")


VALID_HEAD = 'name = "x"\ndocs_url = "u"\n[grades]\nS = 90\nA = 80\nB = 70\nC = 0\n[sections]\n'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name = ", "not valid TOML"),
        ('name = "x"\ndocs_url = "u"\n[grades]\nS = 90\n', "[grades] is missing 'A'"),
        ('name = "x"\ndocs_url = "u"\n[grades]\nS = 70\nA = 80\nB = 60\nC = 0\n', "strictly decreasing"),
        (VALID_HEAD + '[checks."nope.check"]\npoints = 1\n', "names a check that does not exist"),
        (VALID_HEAD + '[checks."cache.ttl"]\npoints = "five"\n', "wrong type"),
        (VALID_HEAD + '[checks."cache.ttl"]\npoints = 5\nsections = ["R9"]\n', "'R9'"),
        (VALID_HEAD + '[checks."leaderboard.pipeline"]\npoints = 1\nseed_timeout = "soon"\n',
         "seed_timeout must be float"),
        (VALID_HEAD + '[checks."leaderboard.pipeline"]\npoints = 1\nseed_module = "app.seed"\n', "seed_module"),
        (VALID_HEAD + '[checks."cache.ttl"]\npoints = 1\ntimeout = -1\n', "timeout must be positive"),
        (VALID_HEAD + '[checks."cache.ttl"]\npoints = nan\n', "points must be a number, not nan"),
        (VALID_HEAD + '[checks."cache.ttl"]\npoints = inf\n', "points must be a number, not inf"),
        (VALID_HEAD + '[checks."cache.ttl"]\npoints = true\n', "points must be a number, not true"),
        (VALID_HEAD + '[checks."cache.ttl"]\npoints = 0\n', "add up to 0"),
        (VALID_HEAD.replace("S = 90", "S = 190") + '[checks."cache.ttl"]\npoints = 1\n', "within 0-100"),
        (VALID_HEAD.replace("C = 0", "C = -10") + '[checks."cache.ttl"]\npoints = 1\n', "within 0-100"),
    ],
)
def test_broken_rubric_is_one_clear_error_naming_the_file(tmp_path, text, problem):
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        rubrics.load(str(path), CHECKS)
    assert str(path) in str(caught.value) and problem in str(caught.value)
    assert "\n" not in str(caught.value).strip()


def test_unknown_rubric_name_lists_the_shipped_ones():
    with pytest.raises(UsageError, match="redis-module"):
        rubrics.load("no-such-rubric", KNOWN)


def test_a_check_takes_its_timeout_and_options_from_its_table():
    pipeline = CHECKS["leaderboard.pipeline"].settings_for(SHIPPED.entry("leaderboard.pipeline").options)
    assert pipeline.seed_modules == ("app.seed", "seed", "scripts.seed") and pipeline.seed_timeout == 30.0
    assert pipeline.timeout == CHECKS["leaderboard.pipeline"].timeout  # the check's own default
    assert CHECKS["quality.tests"].settings_for(SHIPPED.entry("quality.tests").options).timeout == 150.0
    # Equal timeouts: the two checks of the suite share one run of it (checks/suite.py).
    assert CHECKS["quality.coverage"].settings_for(SHIPPED.entry("quality.coverage").options).timeout == 150.0


def test_outcomes_are_an_enum_that_reads_as_the_documents_strings():
    assert failed("x").outcome is Outcome.FAILED and Outcome.FAILED == "failed"
    assert f"{Outcome.SKIPPED}" == "skipped" and str(Outcome.ERROR) == "error"
