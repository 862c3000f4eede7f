"""Gradescope: the results.json the reporter writes (its documented fields, per-check and whole-result
visibility), and examples/gradescope's scripts run against a Gradescope-like folder layout rooted in a temp
dir: setup.sh pre-builds the course's standard environment, then run_autograder grades the reference
submission offline (uv may not reach any index) and leaves a valid results.json."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SUBMISSIONS
from jsonschema import Draft202012Validator

from grader.reporters import gradescope_results
from grader.reporters.gradescope import VISIBILITIES
from grader.schemas import result_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gradescope"
RESULTS = Path(__file__).parent / "results"

# https://gradescope-autograders.readthedocs.io/en/latest/specs/ : results.json's fields and their types.
TOP_FIELDS: dict[str, type | tuple[type, ...]] = {
    "score": (int, float), "execution_time": (int, float), "output": str, "output_format": str,
    "test_output_format": str, "test_name_format": str, "visibility": str, "stdout_visibility": str,
    "extra_data": dict, "tests": list, "leaderboard": list,
}
TEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "score": (int, float), "max_score": (int, float), "status": str, "name": str, "name_format": str,
    "number": str, "output": str, "output_format": str, "tags": list, "visibility": str, "extra_data": dict,
}


def assert_valid_results(doc: Any) -> None:
    """results.json as Gradescope documents it: known fields only, of the right types and values."""
    assert isinstance(doc, dict)
    assert set(doc) <= set(TOP_FIELDS), set(doc) - set(TOP_FIELDS)
    assert "score" in doc or all("score" in t for t in doc.get("tests", []))
    for key, value in doc.items():
        if value is not None:
            assert isinstance(value, TOP_FIELDS[key]) and not isinstance(value, bool), (key, value)
    for key in ("visibility", "stdout_visibility"):
        assert doc.get(key, "visible") in VISIBILITIES
    for test in doc.get("tests", []):
        assert set(test) <= set(TEST_FIELDS), set(test) - set(TEST_FIELDS)
        for key, value in test.items():
            if value is not None:
                assert isinstance(value, TEST_FIELDS[key]) and not isinstance(value, bool), (key, value)
        assert test.get("status", "passed") in ("passed", "failed")
        assert test.get("visibility", "visible") in VISIBILITIES
        assert all(isinstance(tag, str) for tag in test.get("tags", []))
    json.dumps(doc)


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


# --- the reporter ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["graded.json", "error.json"])
def test_results_have_only_documented_fields(name: str) -> None:
    assert_valid_results(gradescope_results(load(name)))


def test_visibility_per_check_and_for_the_whole_result() -> None:
    doc = copy.deepcopy(load("graded.json"))
    by_id = {c["id"]: c for c in doc["checks"]}
    by_id["ratelimit.lua"]["visibility"] = "hidden"
    by_id["cache.stampede"]["visibility"] = "after_due_date"
    by_id["ratelimit.threshold"]["visibility"] = "after_published"
    by_id["app.starts"]["visibility"] = "shown-to-everyone"  # unknown: the safe default
    doc["visibility"] = "after_published"
    gs = gradescope_results(doc)
    assert_valid_results(gs)
    seen = {t["name"].split(":")[0]: t["visibility"] for t in gs["tests"]}
    assert seen["ratelimit.lua"] == "hidden"
    assert seen["cache.stampede"] == "after_due_date"
    assert seen["ratelimit.threshold"] == "after_published"
    assert seen["app.starts"] == "visible" and seen["health.redis_ping"] == "visible"
    assert gs["visibility"] == "after_published"


def test_the_result_schema_allows_visibility_keys() -> None:
    validator = Draft202012Validator(result_schema())
    doc = copy.deepcopy(load("graded.json"))
    doc["visibility"] = "after_due_date"
    doc["checks"][0]["visibility"] = "hidden"
    assert list(validator.iter_errors(doc)) == []
    doc["checks"][0]["visibility"] = "secret"
    assert [e.message for e in validator.iter_errors(doc)]


def test_visibility_defaults_to_visible() -> None:
    gs = gradescope_results(load("graded.json"))
    assert gs["visibility"] == "visible" and {t["visibility"] for t in gs["tests"]} == {"visible"}


def test_a_result_that_could_not_be_graded_is_always_visible() -> None:
    doc = load("error.json")
    doc["visibility"] = "hidden"
    gs = gradescope_results(doc)
    assert gs["visibility"] == "visible" and gs["tests"][0]["visibility"] == "visible"


# --- the scripts, in a Gradescope-like layout ---------------------------------------------------------------


def _layout(tmp_path: Path, grader_main: str) -> tuple[Path, dict[str, str]]:
    """/autograder (source with the example's files, submission, results) and a grader "venv" whose python
    is this interpreter and whose `grader` runs grader_main with it."""
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    for name in ("setup.sh", "run_autograder", "requirements.txt"):
        shutil.copy2(EXAMPLE / name, root / "source" / name)
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    # A script, not a link: a link to this interpreter, followed to its real file, leaves a virtualenv's
    # packages behind when this interpreter is one (Python finds pyvenv.cfg beside the name it was started by).
    python = venv_bin / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    grader = venv_bin / "grader"
    grader.write_text(f'#!/bin/sh\nexec "$(dirname "$0")/python" {grader_main} "$@"\n', encoding="utf-8")
    grader.chmod(0o755)
    env = {
        **os.environ,
        "AUTOGRADER_ROOT": str(root),
        "REDIS_GRADER_VENV": str(tmp_path / "venv"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return root, env


def test_run_autograder_reports_a_grader_that_cannot_run(tmp_path: Path) -> None:
    root, env = _layout(tmp_path, "-c 'import sys; sys.exit(2)'")
    (root / "submission").mkdir()
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr  # Gradescope ignores it; the file says what happened
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert_valid_results(results)
    assert results["score"] == 0 and "exit code 2" in results["output"]


@pytest.mark.slow
def test_setup_then_run_autograder_grades_offline(tmp_path: Path, no_leftovers) -> None:
    root, env = _layout(tmp_path, "-m grader")
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], env={**env, "REDIS_GRADER_SKIP_INSTALL": "1"},
                           capture_output=True, text=True, check=False, timeout=900)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "standard environment ready" in setup.stdout

    shutil.copytree(SUBMISSIONS / "reference", root / "submission")
    # No package index is reachable for the grading itself: the standard environment must come from the cache.
    offline = {**env, "UV_OFFLINE": "1", "PIP_NO_INDEX": "1"}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=offline, capture_output=True,
                          text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stderr
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert_valid_results(results)
    full = json.loads((root / "results" / "redis-grader.json").read_text(encoding="utf-8"))
    assert full["status"] == "graded", full.get("error")
    assert full["environment"]["python_env"].endswith("cached") or ", cached" in full["environment"]["python_env"]
    assert results["score"] == full["score"] and results["extra_data"]["grade"] == full["grade"]
    assert len(results["tests"]) == len(full["checks"])
    assert (root / "results" / "report.html").is_file()
