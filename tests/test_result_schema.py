"""The result document's JSON Schema (grader/schemas/result-v1.schema.json) says what grader/result.py writes:
the stored sample documents, a graded document with every kind of outcome and both kinds of error document
validate, and documents that break the contract do not. Real gradings are validated in test_fixtures.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from conftest import ROOT
from jsonschema import Draft202012Validator

from grader import rubric as rubrics
from grader.checking import load_checks
from grader.outcome import error, failed, passed, skipped
from grader.result import SCHEMA, Submission, failed_to_grade, graded
from grader.schemas import RESULT_V1, result_schema

SAMPLES = sorted((ROOT / "tests" / "results").glob("*.json"))
VALIDATOR = Draft202012Validator(result_schema())


def problems(document: dict[str, Any]) -> list[str]:
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def graded_document() -> dict[str, Any]:
    """A document from grader/result.py with all four outcomes (and a not-applicable skip) in it."""
    checks = load_checks()
    rubric = rubrics.load("redis-module", set(checks))
    ids = [entry.check_id for entry in rubric.entries]
    outcomes = {check_id: passed("fine", seen=[1, 2]) for check_id in ids}
    outcomes[ids[1]] = failed("request 11 got 500, expected 429", requests=["GET /products -> 500"])
    outcomes[ids[2]] = error("the app exited (code 1) during grading", log_tail=["Traceback ..."])
    outcomes[ids[3]] = skipped(f"needs {ids[1]}, which failed")
    outcomes[ids[4]] = skipped("not selected (--only)", applicable=False)
    return graded(
        Submission("alice", "/submissions/alice", "abc123"), rubric, checks, outcomes, duration_s=4.2,
        environment={"runtime": "local", "redis": {"backend": "local", "version": "7.0.15", "source": "/usr/bin/x"}},
        docs_url="https://textbook.example.org/redis",
    )


def test_the_schema_is_valid_json_schema_and_names_the_document_version():
    Draft202012Validator.check_schema(result_schema())
    assert result_schema()["properties"]["schema"]["const"] == SCHEMA
    assert RESULT_V1.is_file() and RESULT_V1.parent.parent.name == "grader"  # shipped inside the package


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_stored_samples_validate(sample):
    assert problems(json.loads(sample.read_text(encoding="utf-8"))) == []


def test_a_graded_document_with_every_outcome_validates():
    document = graded_document()
    assert {c["outcome"] for c in document["checks"]} == {"passed", "failed", "error", "skipped"}
    assert problems(json.loads(json.dumps(document))) == []


def test_error_documents_validate():
    checks = load_checks()
    rubric = rubrics.load("redis-module", set(checks))
    from_runner = failed_to_grade(
        Submission("bob", "/submissions/bob"), rubric, "no Redis could be started: redis-server is not on PATH",
        duration_s=0.3, environment={"runtime": "local", "redis": None, "python_env": "current interpreter"},
    )
    from_runner["timings_s"] = {"workspace": 0.05, "static": 0.01}
    # What `grader batch` writes for a submission whose grading crashed or timed out: no rubric was loaded.
    from_batch = failed_to_grade(
        Submission("carol", "/submissions/carol"), None, "grading did not finish within 600 s and was stopped",
        duration_s=600.0, environment={"runtime": "local", "redis": None},
    )
    assert problems(from_runner) == []
    assert problems(from_batch) == []


def broken(change: str) -> dict[str, Any]:
    document = graded_document()
    failed_check = next(c for c in document["checks"] if c["outcome"] == "failed")
    if change == "unknown outcome":
        document["checks"][0]["outcome"] = "pass"
    elif change == "points for a failure":
        failed_check["points"] = failed_check["max_points"]
    elif change == "remediation on a pass":
        document["checks"][0]["remediation"] = copy.deepcopy(failed_check["remediation"])
    elif change == "missing message":
        del document["checks"][0]["message"]
    elif change == "unknown grade":
        document["grade"] = "D"
    elif change == "an error document with a grade":
        document["status"] = "error"
        document["error"] = "no Redis could be started"
    elif change == "another schema version":
        document["schema"] = "redis-grader/result/v2"
    elif change == "an undocumented field":
        document["checks"][0]["weight"] = 2
    return document


@pytest.mark.parametrize(
    "change",
    [
        "unknown outcome",
        "points for a failure",
        "remediation on a pass",
        "missing message",
        "unknown grade",
        "an error document with a grade",
        "another schema version",
        "an undocumented field",
    ],
)
def test_documents_that_break_the_contract_are_rejected(change):
    assert problems(broken(change)), f"the schema accepts a document with {change}"
