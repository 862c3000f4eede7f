"""The instructor's gradebook for a batch: one CSV row per submission, one column per check id (its outcome).

Check columns are the union of every result's check ids in first-seen order (the rubric's order), so a
submission graded with an error (no checks) still gets a row, with those cells empty.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ._common import fmt_num, read_result
from .quiz import add_gradebook_columns as add_quiz_columns

FIXED_HEAD = ["name", "status", "grade", "score", "max_score"]
FIXED_TAIL = ["duration_s", "error"]


def gradebook_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, str]]]:
    reports = [read_result(r) for r in results]
    check_ids: dict[str, None] = {}
    for report in reports:
        for check in report.checks:
            check_ids.setdefault(check.id, None)
    header = FIXED_HEAD + [cid for cid in check_ids if cid not in FIXED_HEAD + FIXED_TAIL] + FIXED_TAIL
    rows = []
    for report in reports:
        row = {
            "name": report.name,
            "status": report.status,
            "grade": report.grade,
            "score": fmt_num(report.score),
            "max_score": fmt_num(report.max_score),
            "duration_s": fmt_num(report.duration_s),
            "error": report.error if not report.graded else "",
        }
        for check in report.checks:
            row.setdefault(check.id, check.outcome)
        rows.append(row)
    add_quiz_columns(results, header, rows)
    return header, rows


def write_gradebook(results: list[dict[str, Any]], path: str | Path) -> None:
    header, rows = gradebook_rows(results)
    # newline="" lets the csv module write its own line ends unmangled. Plain UTF-8 without a BOM: a BOM
    # would become part of the first column's name for every script that reads this file.
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
