"""The result document (DESIGN.md §5, schema redis-grader/result/v1): the one thing every reporter reads."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader import __version__
from grader.checking import Check
from grader.outcome import CheckOutcome, Outcome
from grader.rubric import Rubric, points_for, score

SCHEMA = "redis-grader/result/v1"


@dataclass
class Submission:
    name: str
    path: str
    commit: str | None = None


def check_record(check: Check, outcome: CheckOutcome, rubric: Rubric, docs_url: str | None) -> dict[str, Any]:
    entry = rubric.entry(check.id)
    assert entry is not None
    earned, _ = points_for(entry, outcome)
    to_fix = outcome.outcome in (Outcome.FAILED, Outcome.ERROR)
    if outcome.sections is not None:  # the outcome names the sections that teach what it saw
        entry = replace(entry, sections=tuple(s for s in outcome.sections if s in rubric.sections))
    hint = entry.hint if outcome.hint is None else outcome.hint
    return {
        "id": check.id,
        "title": check.title,
        "category": check.category,
        "level": check.level,
        "outcome": Outcome(outcome.outcome).value,  # the document holds plain strings
        "points": earned,
        "max_points": entry.points,
        "applicable": outcome.applicable,
        "message": outcome.message,
        "evidence": outcome.evidence,
        "figure": outcome.figure,  # what it saw over time, for the report's pictures (docs/figures.md); null: none
        "hint": hint if to_fix else "",
        "remediation": rubric.remediation(entry, docs_url) if to_fix else [],
        "duration_s": outcome.duration_s,
        "visibility": entry.visibility,
    }


def graded(
    submission: Submission,
    rubric: Rubric,
    checks: Mapping[str, Check],
    outcomes: Mapping[str, CheckOutcome],
    *,
    duration_s: float,
    environment: dict[str, Any],
    docs_url: str | None = None,
) -> dict[str, Any]:
    total = score(rubric, outcomes)
    return {
        **_header(submission, rubric, duration_s, environment),
        "status": "graded",
        "error": None,
        "score": total.score,
        "max_score": 100,
        "grade": total.grade,
        "points": total.points,
        "max_points": total.max_points,
        "visibility": rubric.visibility,
        "checks": [
            check_record(checks[e.check_id], outcomes[e.check_id], rubric, docs_url) for e in rubric.entries
        ],
    }


def failed_to_grade(
    submission: Submission, rubric: Rubric | None, message: str, *, duration_s: float, environment: dict[str, Any]
) -> dict[str, Any]:
    """status "error": the harness could not grade (exit 3). No grade is invented."""
    return {
        **_header(submission, rubric, duration_s, environment),
        "status": "error",
        "error": message,
        "score": None,
        "max_score": 100,
        "grade": None,
        "points": None,
        "max_points": None,
        "checks": [],
    }


def _header(submission: Submission, rubric: Rubric | None, duration_s: float, environment: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "submission": {"name": submission.name, "path": submission.path, "commit": submission.commit},
        "rubric": rubric.name if rubric else None,
        "rubric_title": rubric.title if rubric else None,
        "grade_bands": dict(rubric.bands) if rubric else None,
        "duration_s": round(duration_s, 2),
        "environment": {
            "python": platform.python_version(),
            "grader_version": __version__,
            **environment,
        },
    }


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
