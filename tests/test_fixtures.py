"""Every fixture submission grades exactly as fixtures/catalog.toml says: each check passes on the correct
solutions and fails on the fixture that carries its defect, with the evidence in the message."""

from __future__ import annotations

import json
from functools import cache

import pytest
import tomllib
from conftest import ROOT, SUBMISSIONS
from jsonschema import Draft202012Validator

from grader.runner import GradeOptions, grade
from grader.schemas import result_schema

CATALOG = tomllib.loads((ROOT / "fixtures" / "catalog.toml").read_text())["fixtures"]
RUBRIC_CHECKS = list(tomllib.loads((ROOT / "rubrics" / "redis-module.toml").read_text())["checks"])
RESULT_SCHEMA = Draft202012Validator(result_schema())


def expected_outcomes(name: str) -> dict[str, str]:
    spec = CATALOG[name]
    default = spec.get("others", "passed")
    return {check_id: spec.get("expect", {}).get(check_id, default) for check_id in RUBRIC_CHECKS}


@cache
def graded(name: str) -> dict:
    return grade(SUBMISSIONS / name, GradeOptions(env="current", redis="local", start_timeout=8))


def test_catalog_tests_every_check_both_ways():
    for check_id in RUBRIC_CHECKS:
        outcomes = [expected_outcomes(name)[check_id] for name in CATALOG]
        assert "passed" in outcomes, f"no fixture passes {check_id}"
        assert "failed" in outcomes, f"no fixture fails {check_id}"


def test_catalog_names_real_fixtures():
    assert sorted(CATALOG) == sorted(p.name for p in SUBMISSIONS.iterdir() if p.is_dir())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_fixture_grades_as_catalogued(name, no_leftovers):
    result = graded(name)
    written = json.loads(json.dumps(result))  # what --json writes
    invalid = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in RESULT_SCHEMA.iter_errors(written)]
    assert not invalid, f"{name}: the result document does not match its schema:\n" + "\n".join(invalid)
    assert result["status"] == "graded", result.get("error")
    seen = {c["id"]: c["outcome"] for c in result["checks"]}
    wrong = {
        check_id: f"expected {want}, got {seen[check_id]}: {next(c['message'] for c in result['checks'] if c['id'] == check_id)}"
        for check_id, want in expected_outcomes(name).items()
        if seen[check_id] != want
    }
    assert not wrong, f"{name} ({CATALOG[name]['defect']}):\n" + "\n".join(f"  {k}: {v}" for k, v in wrong.items())
    for record in result["checks"]:
        if record["outcome"] == "failed":
            assert record["message"] and record["evidence"], f"{record['id']} failed without evidence"
            assert record["remediation"] and record["hint"], f"{record['id']} failed without remediation"
