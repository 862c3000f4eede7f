"""Where the files the CLI reads at run time live: in a source checkout, the repository's top-level folders;
in an installed wheel, grader/_data/ (see pyproject.toml's force-include)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def data_dir(name: str) -> Path:
    """`rubrics`, `templates`, `quizzes` or `fixtures`: the installed copy if there is one, else the checkout's."""
    for candidate in (_PACKAGE / "_data" / name, _CHECKOUT / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"redis-grader is missing its {name}/ folder (looked in {_PACKAGE / '_data'} and {_CHECKOUT})")


def rubrics_dir() -> Path:
    return data_dir("rubrics")


def templates_dir() -> Path:
    return data_dir("templates")


def reference_submission() -> Path:
    return data_dir("fixtures") / "submissions" / "reference"


def quizzes_dir() -> Path:
    return data_dir("quizzes")
