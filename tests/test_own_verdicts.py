"""What a check saw decides what the student reads: an outcome's own hint and sections, the limiter checks'
yardstick (the app's own limit), and the coverage report the grader reads as data. Pure logic, no processes."""

from __future__ import annotations

import json
from pathlib import Path

from checks.ratelimit import PROBE_MAX, Burst, OwnLimit
from checks.suite import MAX_REPORT_BYTES, rcfile, read_report
from grader import rubric as rubrics
from grader.api import Registry, Reply, failed, passed
from grader.result import check_record

CHECKS = Registry.load(plugins=False)
SHIPPED = rubrics.load("redis-module", CHECKS)


def _record(outcome) -> dict:
    check_id = "app.starts"
    return check_record(CHECKS[check_id], outcome, SHIPPED, None)


def test_a_failure_gets_the_rubrics_hint_and_sections_by_default() -> None:
    record = _record(failed("it did not start"))
    entry = SHIPPED.entry("app.starts")
    assert record["hint"] == entry.hint
    assert [link["id"] for link in record["remediation"] if "id" in link] == list(entry.sections)


def test_an_outcome_can_name_its_own_hint_and_sections() -> None:
    record = _record(failed("ModuleNotFoundError: app.db", hint="Fix the import it names.", sections=()))
    assert record["hint"] == "Fix the import it names."
    assert not [link for link in record["remediation"] if "id" in link]  # no textbook section about Docker
    assert record["remediation"], "the rubric's official pages stay"
    unknown = _record(failed("x", sections=("R4.1", "NOPE")))  # an id the rubric does not define is left out
    assert [link["id"] for link in unknown["remediation"] if "id" in link] == ["R4.1"]


def test_a_pass_shows_no_hint_even_when_its_outcome_names_one() -> None:
    outcome = passed("fine")
    outcome.hint = "unused"
    assert _record(outcome)["hint"] == ""


def _reply(status: int) -> Reply:
    return Reply("GET", "/products", "127.0.1.2", status, "", 0.01)


class _Client:  # all OwnLimit reads of its client
    ip = "127.0.1.2"


def _limit(statuses: list[int]) -> OwnLimit:
    replies = [_reply(s) for s in statuses]
    refusal = replies[-1] if not replies[-1].ok else None
    served = len(replies) - (1 if refusal else 0)
    return OwnLimit(Burst(_Client(), replies, []), served, refusal)  # type: ignore[arg-type]


def test_the_apps_own_limit_is_the_yardstick_whatever_it_is() -> None:
    for limit in (9, 10, 11):
        own = _limit([200] * limit + [429])
        assert own.unjudgeable("x") is None and own.summary == f"{limit} served, then 429"
    wrong_status = _limit([200] * 10 + [500])
    assert wrong_status.unjudgeable("x") is None and wrong_status.summary == "10 served, then 500"


def test_without_a_limit_there_is_nothing_to_judge_against() -> None:
    never = _limit([200] * PROBE_MAX)
    at_once = _limit([429])
    assert "refused none" in (never.unjudgeable("per-client counting") or "")
    assert "very first request" in (at_once.unjudgeable("per-client counting") or "")


def test_the_graders_coverage_configuration_measures_the_app_not_its_tests(tmp_path: Path) -> None:
    text = rcfile(tmp_path / "backend", tmp_path / "data")
    assert f"source = {tmp_path / 'backend'}" in text and f"data_file = {tmp_path / 'data'}" in text
    assert f"{tmp_path / 'backend'}/*tests/*" in text and f"{tmp_path / 'backend'}/*test_*.py" in text


def test_the_coverage_report_is_read_as_capped_data(tmp_path: Path) -> None:
    root = tmp_path / "submission"
    report = tmp_path / "coverage.json"
    report.write_text(json.dumps({
        "totals": {"percent_covered": 52.1},
        "files": {str(root / "app" / "main.py"): {"summary": {"percent_covered": 60.0}},
                  "app/seed.py": {"summary": {"percent_covered": 0.0}}},
    }))
    measured = read_report(report, root)
    assert measured is not None and measured.percent == 52.1
    assert measured.files == {"app/main.py": 60.0, "app/seed.py": 0.0}
    report.write_text("{not json")
    assert read_report(report, root) is None
    report.write_text(" " * (MAX_REPORT_BYTES + 1))
    assert read_report(report, root) is None
    assert read_report(tmp_path / "absent.json", root) is None
