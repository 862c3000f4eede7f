"""The submission's own suite runs once per grading (checks/suite.py, ctx.once): quality.tests and
quality.coverage judge the same run, and each still works alone. Graded for real (the reference app on a local
Redis), with a test of the submission's that counts the suite's runs in a file outside it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import SUBMISSIONS

from checks.suite import REPORT_MARKER, SuiteRun
from grader.runner import GradeOptions, grade

REFERENCE = SUBMISSIONS / "reference"
BOTH = ("quality.tests", "quality.coverage")

pytestmark = pytest.mark.slow


def counting_submission(tmp_path: Path) -> tuple[Path, Path]:
    root, runs = tmp_path / "submission", tmp_path / "runs"
    shutil.copytree(REFERENCE, root)
    (root / "backend" / "tests" / "test_counts_runs.py").write_text(
        f"def test_counts_runs():\n    with open({str(runs)!r}, 'a') as fh:\n        fh.write('run\\n')\n")
    return root, runs


def outcomes(root: Path, only: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    result = grade(root, GradeOptions(env="current", redis="local", only=only))
    return {c["id"]: c for c in result["checks"] if c["id"] in BOTH}


def test_both_checks_judge_one_run(tmp_path: Path, no_leftovers: None) -> None:
    root, runs = counting_submission(tmp_path)
    seen = outcomes(root, BOTH)
    assert runs.read_text().splitlines() == ["run"]
    assert seen["quality.tests"]["outcome"] == "passed", seen["quality.tests"]
    assert seen["quality.tests"]["evidence"]["command"] == (
        "cd backend && python -m pytest -q -p no:cacheprovider (under coverage)")
    assert seen["quality.coverage"]["outcome"] == "passed", seen["quality.coverage"]


@pytest.mark.parametrize("check_id", BOTH)
def test_each_check_runs_the_suite_alone(tmp_path: Path, check_id: str, no_leftovers: None) -> None:
    root, runs = counting_submission(tmp_path)
    seen = outcomes(root, (check_id,))
    assert runs.read_text().splitlines() == ["run"]
    assert seen[check_id]["outcome"] == "passed", seen[check_id]
    other = next(c for c in BOTH if c != check_id)
    assert seen[other]["outcome"] == "skipped" and not seen[other]["applicable"]


def test_the_suite_cannot_forge_its_coverage_report(tmp_path: Path, no_leftovers: None) -> None:
    """A suite that deletes the data coverage saved and prints the report's marker with a made-up 100 %: the grader
    must judge the coverage it measured (none here), not the line the suite printed."""
    root = tmp_path / "submission"
    shutil.copytree(REFERENCE, root)
    (root / "backend" / "tests" / "conftest.py").write_text(
        "import atexit\nimport json\nimport os\n\nimport coverage\n\n"
        "DATA = coverage.Coverage.current().config.data_file\n"
        "MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'app', 'main.py')\n\n\n"
        "def forge():  # once coverage has saved its data and pytest has let go of the output\n"
        "    os.remove(DATA)\n"
        "    report = {'files': {MAIN: {'summary': {'percent_covered': 100.0}}}, 'totals': {'percent_covered': 100.0}}\n"
        f"    print('\\n' + {REPORT_MARKER!r} + json.dumps(report), flush=True)\n\n\n"
        "atexit.register(forge)\n")
    seen = outcomes(root, ("quality.coverage",))["quality.coverage"]
    assert seen["outcome"] != "passed", seen
    assert "100" not in seen["message"], seen["message"]


def test_a_suite_that_makes_every_warning_an_error_passes_as_it_does_alone(tmp_path: Path, no_leftovers: None) -> None:
    """The libraries the grader loads before coverage starts (checks/suite.py, RUN_SUITE) are loaded after pytest
    has its plugins: loaded before, pytest would warn that it cannot rewrite the asserts of anyio's plugin, and a
    suite that turns every warning into an error would fail under the grader and pass on its own."""
    root = tmp_path / "submission"
    shutil.copytree(REFERENCE, root)
    (root / "backend" / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    seen = outcomes(root, BOTH)
    assert seen["quality.tests"]["outcome"] == "passed", seen["quality.tests"]
    assert "warning" not in " ".join(seen["quality.tests"]["evidence"]["output_tail"]), seen["quality.tests"]
    assert seen["quality.coverage"]["outcome"] == "passed", seen["quality.coverage"]


def test_the_apps_own_lines_are_measured_from_its_first_import(tmp_path: Path, no_leftovers: None) -> None:
    """Coverage starts before the app is first imported, so a module the tests only import (never call) counts
    its top-level lines as run, as `coverage run -m pytest` would."""
    root = tmp_path / "submission"
    shutil.copytree(REFERENCE, root)
    (root / "backend" / "app" / "constants.py").write_text("A = 1\nB = 2\n\n\ndef unused():\n    return A + B\n")
    (root / "backend" / "tests" / "test_constants.py").write_text(
        "from app import constants\n\n\ndef test_constants():\n    assert constants.A == 1\n")
    seen = outcomes(root, ("quality.coverage",))["quality.coverage"]
    assert "backend/app/constants.py: 75%" in seen["evidence"]["least_covered"], seen["evidence"]


def test_a_missing_pytest_or_coverage_is_named_in_both_forms_python_gives() -> None:
    def run(output: str) -> SuiteRun:
        return SuiteRun(returncode=1, output=output, timed_out=False, measured=None, cwd=Path("."), test_files=[],
                        command="")

    assert run("ModuleNotFoundError: No module named 'pytest'").missing_module == "pytest"
    assert run("/venv/bin/python: No module named coverage").missing_module == "coverage"
    assert run("ModuleNotFoundError: No module named 'coverage'").missing_module == "coverage"
    assert run("ModuleNotFoundError: No module named 'pytest_asyncio'").missing_module is None
