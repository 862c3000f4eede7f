"""JUnit XML for CI viewers, written with junitparser: one <testsuite> per check category, one <testcase>
per check (classname = category, name = check id). A failed check is a <failure>, a check the harness
could not decide is an <error>, a skipped one is <skipped> with its reason. Every suite carries the
grade as properties, because most viewers show suite properties but nothing of the root element."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from ._common import Check, Report, evidence_text, fmt_num, read_result
from .quiz import add_junit_suite as add_quiz_suite

# CI viewers show the body in full; a trace of hundreds of commands would bury the point.
MAX_EVIDENCE_ITEMS = 50


def build_junit(result: dict[str, Any]) -> JUnitXml:
    report = read_result(result)
    xml = JUnitXml(name=f"redis-grader: {report.name}")
    if not report.graded:
        # One error case, so a CI viewer shows a red run with the reason instead of an empty (green) one.
        suite = _suite("grader", report)
        case = TestCase(name="grader.run", classname="grader")
        case.result = [Error(message=report.error, type_="grader-error")]
        suite.add_testcase(case)
        xml.add_testsuite(suite)
    for category in report.categories:
        suite = _suite(category.name, report)
        suite.add_testcases([_case(check) for check in category.checks])
        xml.add_testsuite(suite)
    add_quiz_suite(xml, result, _suite("quiz", report))
    xml.update_statistics()
    if report.duration_s is not None:
        xml.time = report.duration_s
    return xml


def write_junit(result: dict[str, Any], path: str | Path) -> None:
    build_junit(result).write(str(path), pretty=True)


def _suite(name: str, report: Report) -> TestSuite:
    suite = TestSuite(name)
    properties = {
        "submission": report.name,
        "commit": report.commit,
        "rubric": report.rubric,
        "status": report.status,
        "grade": report.grade,
        "score": fmt_num(report.score),
        "max_score": fmt_num(report.max_score),
        "next_band": report.advice,
    }
    for key, value in properties.items():
        if value:
            suite.add_property(key, value)
    return suite


def _case(check: Check) -> TestCase:
    case = TestCase(name=check.id, classname=check.category)
    if check.outcome == "passed":
        if check.message:
            case.system_out = check.message
        return case
    if check.outcome == "skipped":
        case.result = [Skipped(message=check.message or "skipped", type_="skipped")]
        return case
    entry = (Failure if check.outcome == "failed" else Error)(message=check.message or check.outcome, type_=check.outcome)
    entry.text = _body(check)
    case.result = [entry]
    return case


def _body(check: Check) -> str:
    lines = [f"expected: {check.title}", f"seen: {check.message}", f"points: {check.points_text}"]
    evidence = evidence_text(check.raw_evidence, max_items=MAX_EVIDENCE_ITEMS)
    if evidence:
        lines += ["", evidence]
    if check.hint:
        lines += ["", f"hint: {check.hint}"]
    for link in check.remediation:
        lines.append(f"learn: {link.title}" + (f" {link.url}" if link.url else ""))
    return "\n".join(lines)
