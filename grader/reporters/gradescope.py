"""Gradescope autograder results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/).

Scaling: the result document's score is already normalised to its max_score (score = points / max_points
* max_score). Each test gets its check's points times the same factor max_score / max_points, so the
tests' scores add up to the result's score (up to rounding to 2 decimals) and their max_scores to
max_score. Gradescope takes the top-level "score" over the sum of the tests when both are present, so
the top-level score is the result's own score and rounding in the tests never changes the grade.
Checks left out of the max (applicable false) get max_score 0.

Visibility: Gradescope shows a test (and the whole result) "visible", "hidden", "after_due_date" or
"after_published". The rubric sets it per check (`visibility` in a check's table) and for the whole result
(a top-level `visibility`); the result document carries both as an optional `visibility` key, in each check
record and at its top level. A missing or unknown value is "visible".
"""

from __future__ import annotations

from typing import Any

from ._common import Check, Report, evidence_text, join_nonempty, read_result
from .quiz import gradescope_tests as quiz_gradescope_tests

MAX_EVIDENCE_ITEMS = 50
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


def costs_points(check: Check) -> bool:
    """A skip that counted in the maximum and earned nothing: to the student it is a failure."""
    return check.costs_points


def visibility(value: Any) -> str:
    return value if isinstance(value, str) and value in VISIBILITIES else "visible"


def _check_visibilities(result: Any, count: int) -> list[str]:
    """Each check record's visibility, in the order read_result keeps the checks."""
    records = result.get("checks") if isinstance(result, dict) else None
    records = records if isinstance(records, list) else []
    found = [visibility(r.get("visibility")) if isinstance(r, dict) else "visible" for r in records[:count]]
    return found + ["visible"] * (count - len(found))


def gradescope_results(result: dict[str, Any]) -> dict[str, Any]:
    report = read_result(result)
    raw_max = report.max_points if report.max_points else sum(c.max_points for c in report.checks if c.applicable)
    factor = report.max_score / raw_max if raw_max else 0.0
    shown = _check_visibilities(result, len(report.checks))
    tests = [_test(check, factor, seen) for check, seen in zip(report.checks, shown)] + quiz_gradescope_tests(result)
    if not report.graded:
        # Gradescope shows a failed test far more prominently than the top-level output.
        tests.insert(0, {"name": "grader: could not grade this submission", "score": 0.0, "max_score": 0.0,
                         "status": "failed", "output": report.error, "visibility": "visible"})
    out: dict[str, Any] = {
        "score": round(report.score, 2) if report.graded and report.score is not None else 0.0,
        "output": _summary(report),
        # A result the grader could not produce is always shown: the student has to know to ask.
        "visibility": visibility(result.get("visibility")) if report.graded and isinstance(result, dict) else "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        # The results.json format has no top-level max_score (the assignment's total is set on Gradescope).
        "extra_data": {"grade": report.grade or None, "status": report.status, "rubric": report.rubric,
                       "max_score": report.max_score},
    }
    if report.duration_s is not None:
        out["execution_time"] = round(report.duration_s, 2)
    return out


def _test(check: Check, factor: float, seen: str) -> dict[str, Any]:
    max_score = check.max_points * factor if check.applicable else 0.0
    return {
        "name": f"{check.id}: {check.title}",
        "score": round(check.points * factor if check.applicable else 0.0, 2),
        "max_score": round(max_score, 2),
        # Gradescope knows only passed/failed: an error or a skip that cost points is a failure.
        "status": "failed" if check.problem or costs_points(check) else "passed",
        "output": _output(check),
        "tags": [check.category, check.level] if check.level else [check.category],
        "visibility": seen,
    }


def _output(check: Check) -> str:
    lines = [f"{check.outcome}: {check.message}" if check.message else check.outcome]
    if check.problem:
        evidence = evidence_text(check.raw_evidence, max_items=MAX_EVIDENCE_ITEMS)
        if evidence:
            lines += ["", evidence]
        if check.hint:
            lines += ["", f"Hint: {check.hint}"]
        if check.remediation:
            lines += ["", "Learn more:"]
            lines += [f"  - {link.title}" + (f": {link.url}" if link.url else "") for link in check.remediation]
    return "\n".join(lines)


def _summary(report: Report) -> str:
    if not report.graded:
        return f"Could not grade {report.name}: {report.error}"
    counts = join_nonempty((f"{report.count(o)} {o}" if report.count(o) else "" for o in ("passed", "failed", "error", "skipped")), ", ")
    lines = [f"Grade {report.grade or '?'}: {report.score_text} ({counts})."]
    if report.advice:
        lines.append(f"Next: {report.advice}.")
    lines.append(f"Rubric: {report.rubric_title}" + (f" ({report.rubric})" if report.rubric else "") + ".")
    return "\n".join(lines)
