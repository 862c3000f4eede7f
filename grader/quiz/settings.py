"""The rubric's [quiz] table: which bank a submission's quiz.yaml answers, and whether the quiz counts
towards the grade. Read from the same TOML file as the rubric.

    [quiz]
    bank = "redis-module"   # a shipped bank's name, or a path (relative to the rubric file)
    counts = false          # false: reported beside the grade; true: part of the score
    points = 10             # when it counts: the points it adds to the rubric's total
    credit = "ratio"        # "ratio": points x the share answered right; "pass": all points when passed, else 0
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CREDITS = ("ratio", "pass")
KEYS = {"bank", "counts", "points", "credit"}


@dataclass(frozen=True)
class QuizSettings:
    bank: str = "redis-module"
    counts: bool = False
    points: float = 0.0
    credit: str = "ratio"


def load_settings(rubric_path: Path) -> QuizSettings:
    """The [quiz] table of a rubric file; the defaults when it has none."""
    try:
        data = tomllib.loads(rubric_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"rubric {rubric_path}: cannot read its [quiz] table: {exc}") from None
    table = data.get("quiz", {})
    if not isinstance(table, dict):
        raise UsageError(f"rubric {rubric_path}: [quiz] must be a table")
    try:
        return parse_settings(table, rubric_path.parent)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"rubric {rubric_path}: [quiz] {exc}") from None


def parse_settings(table: dict[str, Any], base: Path) -> QuizSettings:
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ValueError(f"has unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    bank = table.get("bank", QuizSettings.bank)
    counts = table.get("counts", False)
    points = table.get("points", 0)
    credit = table.get("credit", "ratio")
    if not isinstance(bank, str) or not bank:
        raise ValueError("bank must be a bank's name or a path")
    if not isinstance(counts, bool):
        raise TypeError("counts must be true or false")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points) or points < 0:
        raise ValueError("points must be a number, 0 or more")
    if counts and points <= 0:
        raise ValueError("counts = true needs points above 0 (the points the quiz adds to the rubric's total)")
    if credit not in CREDITS:
        raise ValueError(f"credit must be one of {', '.join(CREDITS)}")
    if _is_path(bank) and not Path(bank).is_absolute():
        bank = str(base / bank)  # a bank beside the rubric file, wherever the grader runs from
    return QuizSettings(bank, counts, float(points), credit)


def _is_path(bank: str) -> bool:
    return "/" in bank or "\\" in bank or bank.endswith((".yaml", ".yml", ".json", ".md"))
