"""The result document's `quiz` section, and how a graded submission gets one: its quiz.yaml graded against
the rubric's bank, wrong answers linked to the textbook the way the rubric links failed checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from grader.rubric import Rubric, RubricEntry

from .answers import ANSWER_FILE_NAMES, load_answers
from .bank import load_bank
from .grading import QuizResult, grade_answers
from .model import Answers, Bank, QuizInputError
from .settings import QuizSettings

DEFAULT_SETTINGS = QuizSettings()  # the shipped bank, reported beside the grade


def quiz_section(
    bank: Bank,
    answers: Answers,
    rubric: Rubric,
    docs_url: str | None = None,
    settings: QuizSettings = DEFAULT_SETTINGS,
) -> dict[str, Any]:
    """Grade one student's answers; the section the result document carries under "quiz"."""
    result = grade_answers(bank, answers)
    return {
        **_head(bank.name, settings),
        "status": "graded",
        "error": None,
        "title": bank.title,
        "student": answers.student,
        "answers": Path(answers.source).name if answers.source else None,
        "correct": result.correct,
        "total": result.total,
        "answered": result.answered,
        "score": round(100.0 * result.ratio, 2),
        "max_score": 100,
        "ratio": round(result.ratio, 4),
        "pass_ratio": bank.pass_ratio,
        "passed": result.passed,
        "points": earned_points(result, settings) if settings.counts else None,
        "questions": _questions(result, rubric, docs_url),
    }


def quiz_error(
    bank_name: str, message: str, settings: QuizSettings = DEFAULT_SETTINGS, status: str = "error"
) -> dict[str, Any]:
    """A quiz that could not be graded ("error": a broken bank or answers file; "missing": no answers file
    while the quiz counts). It says why, and earns nothing."""
    return {
        **_head(bank_name, settings),
        "status": status,
        "error": message,
        "title": None,
        "student": None,
        "answers": None,
        "correct": None,
        "total": None,
        "answered": None,
        "score": None,
        "max_score": 100,
        "ratio": None,
        "pass_ratio": None,
        "passed": None if status == "error" else False,
        "points": 0.0 if settings.counts else None,
        "questions": [],
    }


def _head(bank_name: str, settings: QuizSettings) -> dict[str, Any]:
    return {"bank": bank_name, "counts": settings.counts, "max_points": settings.points if settings.counts else None}


def earned_points(result: QuizResult, settings: QuizSettings) -> float:
    if settings.credit == "pass":
        return settings.points if result.passed else 0.0
    return round(settings.points * result.ratio, 2)


def _questions(result: QuizResult, rubric: Rubric, docs_url: str | None) -> list[dict[str, Any]]:
    # The bank may add sections the rubric lacks (a topic no check covers); the rubric's own win.
    teacher = dataclasses.replace(rubric, sections={**result.bank.sections, **rubric.sections})
    rows = []
    for item in result.questions:
        question = item.question
        entry = RubricEntry(f"quiz.{question.id}", 1.0, question.sections, "", {})
        rows.append({
            "id": question.id,
            "text": question.text,
            "kind": question.kind,
            "given": item.given_value,
            "correct": item.correct,
            "sections": list(question.sections),
            "remediation": [] if item.correct else teacher.remediation(entry, docs_url),
        })
    return rows


def find_answers(root: Path) -> Path | None:
    # A dangling symbolic link is found too, so the report can say why it is refused.
    candidates = (root / name for name in ANSWER_FILE_NAMES)
    return next((path for path in candidates if path.exists() or path.is_symlink()), None)


def submission_quiz(
    root: Path, student: str, rubric: Rubric, settings: QuizSettings, docs_url: str | None = None
) -> dict[str, Any] | None:
    """The quiz section for the submission in `root`, or None when it has no quiz.yaml and the quiz does not
    count. Never raises for a broken bank or answers file: the section then says what is wrong."""
    path = find_answers(root)
    if path is None:
        if not settings.counts:
            return None
        return quiz_error(Path(settings.bank).stem, "the submission has no quiz.yaml", settings, status="missing")
    try:
        bank = load_bank(settings.bank, rubric)
    except QuizInputError as exc:
        return quiz_error(Path(settings.bank).stem, f"the quiz bank is broken: {exc}", settings)
    try:
        if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
            raise QuizInputError(path, "a symbolic link out of the repository; the answers must be a file in it")
        answers = load_answers(path, bank, student=student)
    except QuizInputError as exc:
        # The workspace is a temporary copy: name the file as the student knows it.
        return quiz_error(bank.name, str(exc).replace(str(path), path.name), settings)
    section = quiz_section(bank, answers, rubric, docs_url, settings)
    section["answers"] = path.name
    return section


def attach_quiz(
    result: dict[str, Any], root: Path, rubric: Rubric, settings: QuizSettings, docs_url: str | None = None
) -> None:
    """submission_quiz() then add_quiz(), for a caller that has the result document and the submission."""
    student = str((result.get("submission") or {}).get("name") or root.name)
    add_quiz(result, submission_quiz(root, student, rubric, settings, docs_url), rubric, settings)


def add_quiz(result: dict[str, Any], section: dict[str, Any] | None, rubric: Rubric, settings: QuizSettings) -> None:
    """Put the `quiz` section into a result document (nothing when there is none), and when the rubric counts
    the quiz, its points: max_points grows by [quiz] points, points by what the quiz earned, then score and
    grade are computed again from them. A result that could not be graded gets the section but no score."""
    if section is None:
        return
    result["quiz"] = section
    if settings.counts and result.get("status") == "graded":
        points = float(result.get("points") or 0.0) + float(section["points"] or 0.0)
        max_points = float(result.get("max_points") or 0.0) + settings.points
        result["points"], result["max_points"] = round(points, 2), max_points
        result["score"] = round(100.0 * points / max_points, 2) if max_points else 0.0
        result["grade"] = rubric.grade_for(result["score"])
