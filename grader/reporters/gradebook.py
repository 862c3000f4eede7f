"""The instructor's gradebook for a batch: one CSV row per submission, one column per check id (its outcome) and
one per check with the points it earned ("<id> points").

Check columns are the union of every result's check ids in first-seen order (the rubric's order), so a
submission graded with an error (no checks) still gets a row, with those cells empty. A check left out of the
score (not selected by --only, not applicable) has an empty points cell; a skip that counts (a required check
failed, so it earns 0 of its points) has "0", and `scored_skips` names those checks. `commit` is the commit
graded, with "+dirty" when the tree had changes not committed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ._common import fmt_num, read_result
from .quiz import add_gradebook_columns as add_quiz_columns

FIXED_HEAD = ["name", "status", "grade", "score", "max_score", "commit"]
FIXED_TAIL = ["duration_s", "scored_skips", "error"]
POINTS = " points"  # suffix of a check's points column
# A spreadsheet reads a cell that starts with one of these as a formula, and a formula can fetch, link or run
# things on the instructor's machine. The cells whose text a submission can shape (its folder or archive name,
# the reason it could not be graded) get a leading apostrophe there, which spreadsheets show as plain text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FREE_TEXT = ("name", "error")


def gradebook_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, str]]]:
    reports = [read_result(r) for r in results]
    check_ids: dict[str, None] = {}
    for report in reports:
        for check in report.checks:
            check_ids.setdefault(check.id, None)
    ids = [cid for cid in check_ids if cid not in FIXED_HEAD + FIXED_TAIL]
    header = FIXED_HEAD + ids + [cid + POINTS for cid in ids] + FIXED_TAIL
    rows = []
    for result, report in zip(results, reports):
        row = {
            "name": report.name,
            "status": report.status,
            "grade": report.grade,
            "score": fmt_num(report.score),
            "max_score": fmt_num(report.max_score),
            "commit": commit_label(result),
            "duration_s": fmt_num(report.duration_s),
            "scored_skips": " ".join(c.id for c in report.checks if c.outcome == "skipped" and c.applicable),
            "error": report.error if not report.graded else "",
        }
        row.update({column: as_text(row[column]) for column in FREE_TEXT})
        for check in report.checks:
            row.setdefault(check.id, check.outcome)
            row.setdefault(check.id + POINTS, fmt_num(check.points) if check.applicable else "")
        rows.append(row)
    add_quiz_columns(results, header, rows)
    return header, rows


def as_text(cell: str | None) -> str:
    """`cell` as a spreadsheet shows it as text, never runs it as a formula."""
    text = cell or ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def commit_label(result: dict[str, Any]) -> str:
    """The commit graded, "<sha>+dirty" when the tree differed from it, "" when unknown."""
    submission = result.get("submission") if isinstance(result.get("submission"), dict) else {}
    commit = submission.get("commit") or ""
    return f"{commit}+dirty" if commit and submission.get("dirty") else str(commit)


def write_gradebook(results: list[dict[str, Any]], path: str | Path) -> None:
    header, rows = gradebook_rows(results)
    # newline="" lets the csv module write its own line ends unmangled. Plain UTF-8 without a BOM: a BOM
    # would become part of the first column's name for every script that reads this file.
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
