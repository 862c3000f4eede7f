"""quality.lint cannot be steered by the submission: its suppression comments, its ruff configuration and a
`ruff` package of its own change nothing; no Python file to check is a failure. Graded for real (the reference
app on a local Redis), only the lint check."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import SUBMISSIONS

from grader.runner import GradeOptions, grade

REFERENCE = SUBMISSIONS / "reference"
MAIN = Path("backend/app/main.py")
ONLY_LINT = GradeOptions(env="current", redis="local", only=("quality.lint",))

pytestmark = pytest.mark.slow


def submission(tmp_path: Path) -> Path:
    root = tmp_path / "submission"
    shutil.copytree(REFERENCE, root)
    return root


def lint_outcome(root: Path, options: GradeOptions = ONLY_LINT) -> dict[str, Any]:
    result = grade(root, options)
    return next(c for c in result["checks"] if c["id"] == "quality.lint")


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_reference_passes(tmp_path: Path) -> None:
    lint = lint_outcome(submission(tmp_path))
    assert lint["outcome"] == "passed", lint


def test_noqa_comments_do_not_hide_an_error(tmp_path: Path) -> None:
    root = submission(tmp_path)
    append(root / MAIN, "\nimport shlex  # noqa\nimport base64  # noqa: F401\n")
    (root / "backend" / "app" / "extra.py").write_text("# ruff: noqa\nimport textwrap\n")
    lint = lint_outcome(root)
    assert lint["outcome"] == "failed", lint
    found = "\n".join(lint["evidence"]["findings"])
    assert "shlex" in found and "base64" in found and "backend/app/extra.py" in found


def test_the_submissions_ruff_configuration_is_ignored(tmp_path: Path) -> None:
    root = submission(tmp_path)
    append(root / MAIN, "\nimport shlex\n")
    ignore_all = '[lint]\nignore = ["ALL"]\nexclude = ["*"]\n'
    (root / "ruff.toml").write_text('extend-exclude = ["backend"]\n' + ignore_all)
    (root / "backend" / "ruff.toml").write_text(ignore_all)
    (root / "backend" / "pyproject.toml").write_text('[tool.ruff.lint]\nignore = ["ALL"]\n')
    (root / ".gitignore").write_text("backend/\n")
    lint = lint_outcome(root)
    assert lint["outcome"] == "failed", lint
    assert any("backend/app/main.py" in f and "shlex" in f for f in lint["evidence"]["findings"])


def test_a_ruff_package_in_the_submission_is_never_run(tmp_path: Path) -> None:
    # `python -m ruff` from the submission's folder would import this instead of the grader's ruff.
    root = submission(tmp_path)
    marker = tmp_path / "hijacked"
    (root / "ruff").mkdir()
    (root / "ruff" / "__init__.py").write_text("")
    (root / "ruff" / "__main__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    append(root / MAIN, "\nimport shlex\n")
    lint = lint_outcome(root)
    assert lint["outcome"] == "failed", lint
    assert not marker.exists()


def test_no_python_file_to_check_is_a_failure(tmp_path: Path) -> None:
    # The app still starts (its module is a symlink, which the shared rule does not read), but no file is
    # left for ruff: that is not a clean lint.
    root = tmp_path / "submission"
    root.mkdir()
    (root / "server.txt").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
    (root / "main.py").symlink_to("server.txt")
    lint = lint_outcome(root, GradeOptions(env="current", redis="local", only=("quality.lint",), app="main:app"))
    assert lint["outcome"] == "failed", lint
    assert "no Python file" in lint["message"]
