"""The quiz in a graded submission: its quiz.yaml read into the result document's `quiz` section (a broken
one never stops the grading), the rubric's [quiz] table and a counted quiz's points, and every report of
the section, from tests/results/graded.json plus a quiz."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

import pytest
from junitparser import Failure, JUnitXml
from quiz_kit import answers_with_wrong, graded_doc, key_answers, write_yaml

from grader import rubric as rubrics
from grader.quiz import Bank, QuizSettings, attach_quiz, load_settings, submission_quiz
from grader.reporters import gradescope_results, render_terminal, write_gradebook
from grader.reporters._common import read_result
from grader.reporters._templates import environment
from grader.reporters.junit import build_junit
from grader.reporters.quiz import template_context

pytest_plugins = ("quiz_kit",)  # its fixtures: the shipped `rubric` and `bank`

# --- the submission's quiz.yaml and the rubric's [quiz] table ----------------------------------------------


def test_submission_quiz(bank: Bank, rubric: rubrics.Rubric, tmp_path: Path) -> None:
    settings = QuizSettings()
    assert submission_quiz(tmp_path, "alice", rubric, settings) is None  # no quiz.yaml, not counted: no section
    write_yaml(tmp_path / "quiz.yaml", key_answers(bank))
    section = submission_quiz(tmp_path, "alice", rubric, settings)
    assert section is not None and section["passed"] is True and section["answers"] == "quiz.yaml"
    assert section["student"] == "alice" and section["counts"] is False and section["points"] is None


def test_broken_quiz_yaml_never_stops_grading(rubric: rubrics.Rubric, tmp_path: Path) -> None:
    (tmp_path / "quiz.yaml").write_text("ttl-setex: zzz\n", encoding="utf-8")
    section = submission_quiz(tmp_path, "alice", rubric, QuizSettings())
    assert section is not None and section["status"] == "error" and section["passed"] is None
    # Named as the student knows it, not by the grader's temporary copy.
    assert section["error"] == "quiz.yaml: question 'ttl-setex': 'zzz' is not one of its choices (a, b, c, d)"
    assert str(tmp_path) not in section["error"]
    (tmp_path / "quiz.yaml").unlink()
    (tmp_path / "quiz.yaml").symlink_to("/etc/hostname")
    section = submission_quiz(tmp_path, "alice", rubric, QuizSettings())
    assert section is not None and section["status"] == "error"
    assert section["error"] == "quiz.yaml: a symbolic link out of the repository; the answers must be a file in it"
    # A link that stays inside the repository is read like the file it names.
    (tmp_path / "quiz.yaml").unlink()
    (tmp_path / "answers").mkdir()
    (tmp_path / "answers" / "theory.yaml").write_text("ttl-setex: d\n", encoding="utf-8")
    (tmp_path / "quiz.yaml").symlink_to("answers/theory.yaml")
    section = submission_quiz(tmp_path, "alice", rubric, QuizSettings())
    assert section is not None and section["status"] == "graded" and section["correct"] == 1


def test_rubric_quiz_table(tmp_path: Path, rubric: rubrics.Rubric) -> None:
    assert load_settings(rubric.source) == QuizSettings()  # the shipped rubric: reported beside the grade
    path = tmp_path / "rubric.toml"
    path.write_text('[quiz]\nbank = "banks/mine.yaml"\ncounts = true\npoints = 10\ncredit = "pass"\n', encoding="utf-8")
    assert load_settings(path) == QuizSettings(str(tmp_path / "banks/mine.yaml"), True, 10.0, "pass")
    for table, problem in [('counts = true', "needs points above 0"), ('credit = "half"', "credit must be one of"),
                           ('weight = 2', r"unknown key\(s\) weight")]:
        path.write_text(f"[quiz]\n{table}\n", encoding="utf-8")
        with pytest.raises(Exception, match=problem) as caught:
            load_settings(path)
        assert getattr(caught.value, "exit_code", None) == 2


@pytest.mark.parametrize(("credit", "wrong", "earned"), [("ratio", 3, 8.0), ("pass", 3, 10.0), ("pass", 4, 0.0)])
def test_counted_quiz_adds_its_points(bank: Bank, rubric: rubrics.Rubric, tmp_path: Path, credit: str, wrong: int,
                                      earned: float) -> None:
    write_yaml(tmp_path / "quiz.yaml", answers_with_wrong(bank, wrong))
    doc = graded_doc()  # 55 of 75 points
    attach_quiz(doc, tmp_path, rubric, QuizSettings("redis-module", True, 10.0, credit))
    assert doc["quiz"]["points"] == earned and doc["quiz"]["max_points"] == 10.0
    assert (doc["points"], doc["max_points"]) == (55 + earned, 85.0)
    assert doc["score"] == round(100 * (55 + earned) / 85, 2)
    assert doc["grade"] == rubric.grade_for(doc["score"])


def test_counted_quiz_without_answers_costs_its_points(rubric: rubrics.Rubric, tmp_path: Path) -> None:
    doc = graded_doc()
    attach_quiz(doc, tmp_path, rubric, QuizSettings("redis-module", True, 10.0))
    assert doc["quiz"]["status"] == "missing" and doc["quiz"]["passed"] is False
    assert (doc["points"], doc["max_points"]) == (55.0, 85.0)
    uncounted = graded_doc()
    attach_quiz(uncounted, tmp_path, rubric, QuizSettings())
    assert "quiz" not in uncounted and uncounted["score"] == 73.33


# --- the reports -------------------------------------------------------------------------------------------


@pytest.fixture
def with_quiz(bank: Bank, rubric: rubrics.Rubric, tmp_path: Path) -> dict[str, Any]:
    """graded.json plus the quiz of a student who got ttl-setex wrong and left incr-race unanswered."""
    answers = key_answers(bank)
    answers["ttl-setex"] = "a"
    del answers["incr-race"]
    write_yaml(tmp_path / "quiz.yaml", answers)
    doc = graded_doc()
    attach_quiz(doc, tmp_path, rubric, QuizSettings(), docs_url="https://textbook.example.org/redis")
    assert doc["quiz"]["correct"] == 13 and doc["score"] == 73.33  # reported beside the grade
    return doc


def test_terminal_shows_the_quiz(with_quiz: dict[str, Any]) -> None:
    text = render_terminal(with_quiz, color=False)
    assert "quiz  Redis: кэш, счётчики и Lua — теория" in text
    assert "13/15 correct (86.67%), passed at 80%  (not counted in the grade)" in text
    assert "given: a" in text and "given: (no answer)" in text
    assert "learn: R2.1 Expiration: EXPIRE, TTL, SETEX  https://textbook.example.org/redis/r2-ttl#expiration" in text
    assert text.rstrip().splitlines()[-1].startswith("next:") or "grade B" in text.rstrip().splitlines()[-2]
    assert "quiz" not in render_terminal(graded_doc(), color=False)


def test_junit_has_a_quiz_suite(with_quiz: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    build_junit(with_quiz).write(str(path))
    suites = {s.name: s for s in JUnitXml.fromfile(str(path))}
    suite = suites["quiz"]
    cases = {c.name: c for c in suite}
    assert len(cases) == 15 and suite.failures == 2
    failure = cases["ttl-setex"].result[0]
    assert isinstance(failure, Failure) and failure.message == "given: a"
    assert "learn: R2.1 Expiration" in failure.text
    assert cases["in-memory-single-thread"].is_passed
    assert "quiz" not in {s.name for s in build_junit(graded_doc())}


def test_gradescope_has_quiz_tests(
    with_quiz: dict[str, Any], bank: Bank, rubric: rubrics.Rubric, tmp_path: Path
) -> None:
    out = gradescope_results(with_quiz)
    quiz_tests = [t for t in out["tests"] if "quiz" in t.get("tags", [])]
    assert len(quiz_tests) == 16
    summary = quiz_tests[0]
    assert summary["max_score"] == 0.0 and summary["status"] == "passed" and "13/15 correct" in summary["output"]
    wrong = next(t for t in quiz_tests if t["name"] == "quiz ttl-setex")
    assert wrong["status"] == "failed" and "R2.1 Expiration" in wrong["output"]
    assert out["score"] == 73.33
    # Counted: the summary test carries the quiz's points on the checks' scale, and all tests add up.
    write_yaml(tmp_path / "quiz.yaml", key_answers(bank))
    counted = graded_doc()
    attach_quiz(counted, tmp_path, rubric, QuizSettings("redis-module", True, 25.0))
    out = gradescope_results(counted)
    summary = next(t for t in out["tests"] if t["name"].startswith("quiz: "))
    assert summary["max_score"] == 25.0 and summary["score"] == 25.0
    assert sum(t["max_score"] for t in out["tests"]) == pytest.approx(out["extra_data"]["max_score"], abs=0.05)
    assert out["score"] == counted["score"] == 80.0


def test_gradebook_quiz_columns(with_quiz: dict[str, Any], tmp_path: Path) -> None:
    broken = copy.deepcopy(graded_doc())
    broken["submission"]["name"] = "bob"
    broken["quiz"] = {"status": "error", "error": "quiz.yaml: not valid YAML", "bank": "redis-module", "questions": []}
    plain = copy.deepcopy(graded_doc())
    plain["submission"]["name"] = "carol"
    path = tmp_path / "gradebook.csv"
    write_gradebook([with_quiz, broken, plain], path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    header = next(csv.reader(path.open(encoding="utf-8")))
    assert header[:7] == ["name", "status", "grade", "score", "max_score", "quiz_score", "quiz_passed"]
    assert [(r["quiz_score"], r["quiz_passed"]) for r in rows] == [("86.67", "yes"), ("", "error"), ("", "")]
    write_gradebook([plain], path)
    assert "quiz_score" not in path.read_text(encoding="utf-8")


def render_with_quiz(template: str, doc: dict[str, Any]) -> str:
    """A report page with the quiz partial, rendered with the context the report renderers pass."""
    return environment().get_template(template).render(report=read_result(doc), **template_context(doc))


def test_html_shows_the_quiz(with_quiz: dict[str, Any]) -> None:
    page = render_with_quiz("report.html.j2", with_quiz)
    assert '<section class="quiz" id="quiz">' in page
    assert "13/15 correct (86.67%), passed at 80%" in page
    link = '<a href="https://textbook.example.org/redis/r2-ttl#expiration">R2.1 Expiration: EXPIRE, TTL, SETEX</a>'
    assert link in page
    assert "<em class=\"muted\">no answer</em>" in page
    assert 'class="quiz"' not in render_with_quiz("report.html.j2", graded_doc())


def test_markdown_shows_the_quiz(with_quiz: dict[str, Any]) -> None:
    text = render_with_quiz("report.md.j2", with_quiz)
    assert "### Quiz: Redis: кэш, счётчики и Lua — теория (not counted in the grade)" in text
    assert "**13/15 correct (86.67%), passed at 80%**" in text
    assert "| ❌ | `ttl-setex` " in text
    assert "[R2.1 Expiration: EXPIRE, TTL, SETEX](https://textbook.example.org/redis/r2-ttl#expiration)" in text
    assert "### Quiz" not in render_with_quiz("report.md.j2", graded_doc())


def test_reports_survive_an_odd_quiz_section() -> None:
    doc = graded_doc()
    doc["quiz"] = {"questions": [None, {"id": 3, "given": {"x": 1}}], "passed": "yes", "score": "high"}
    assert "quiz" in render_terminal(doc, color=False)
    build_junit(doc)
    gradescope_results(doc)
    render_with_quiz("report.html.j2", doc)
    render_with_quiz("report.md.j2", doc)
