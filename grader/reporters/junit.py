"""JUnit XML for CI viewers, written with junitparser: one <testsuite> per check category, one <testcase>
per check (classname = category, name = check id). A failed check is a <failure>, a check the harness
could not decide is an <error>, a skipped one is <skipped> with its reason, except a skip that cost points
(the check counted in the maximum and earned nothing), which is a <failure> as it is on Gradescope. Every
suite carries the grade as properties, because most viewers show suite properties but nothing of the root
element.

The file follows the Jenkins xUnit plugin's junit-10.xsd, the schema most JUnit readers accept: each
testcase has its `time` (the check's duration_s; 0 when the document has none), suite times are the sums
of their cases and the root's time the sum of the suites, the root has no `skipped` attribute (the schema
does not allow one there), and a testcase names the `file` and `line` its evidence points at, if any.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from junitparser import Attr, Error, Failure, IntAttr, JUnitXml, Skipped, TestCase, TestSuite

from ._common import Check, Report, clean_text, evidence_text, fmt_num, read_result
from .gradescope import costs_points
from .quiz import add_junit_suite as add_quiz_suite

# CI viewers show the body in full; a trace of hundreds of commands would bury the point.
MAX_EVIDENCE_ITEMS = 50
# "app/main.py:12: ..." (the static findings) or "app/main.py:3:5: F401 ..." (ruff): a path with an
# extension, a line number, an optional column, then a colon. Log lines ("INFO:  127.0.0.1:5000 - ...")
# and HTTP traces do not match.
_LOCATION = re.compile(r"^(?P<file>[\w./-]*\w\.\w+):(?P<line>\d+)(?::\d+)?:")


class _Case(TestCase):
    file = Attr()
    line = IntAttr()


class _Suites(JUnitXml):
    def update_statistics(self) -> None:
        super().update_statistics()
        # junitparser counts skips on the root too; junit-10.xsd allows `skipped` only on a testsuite.
        self._elem.attrib.pop("skipped", None)


def code_location(evidence: Any) -> tuple[str, int] | None:
    """The first `file:line` an evidence value starts with (a string, or an item of a list), if any."""
    values = evidence.values() if isinstance(evidence, dict) else [evidence]
    for value in values:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(item, str):
                continue
            match = _LOCATION.match(clean_text(item).strip())
            if match:
                return match.group("file"), int(match.group("line"))
    return None


def build_junit(result: dict[str, Any]) -> JUnitXml:
    report = read_result(result)
    xml = _Suites(name=f"redis-grader: {report.name}")
    if not report.graded:
        # One error case, so a CI viewer shows a red run with the reason instead of an empty (green) one.
        suite = _suite("grader", report)
        case = _Case(name="grader.run", classname="grader", time=_seconds(report.duration_s))
        case.result = [Error(message=report.error, type_="grader-error")]
        suite.add_testcase(case)
        xml.add_testsuite(suite)
    durations = _durations(result, len(report.checks))
    by_check = {id(check): seconds for check, seconds in zip(report.checks, durations)}
    for category in report.categories:
        suite = _suite(category.name, report)
        suite.add_testcases([_case(check, by_check[id(check)]) for check in category.checks])
        xml.add_testsuite(suite)
    add_quiz_suite(xml, result, _suite("quiz", report))
    xml.update_statistics()
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


def _seconds(value: float | None) -> float:
    # Three decimals, so the suites' sums of their cases are exact in the file as well.
    return round(value, 3) if value is not None and value > 0 else 0.0


def _durations(result: Any, count: int) -> list[float | None]:
    """Each check record's duration_s, in the order read_result keeps; None where it is missing or odd."""
    records = result.get("checks") if isinstance(result, dict) else None
    records = records if isinstance(records, list) else []
    seconds: list[float | None] = []
    for record in records[:count]:
        value = record.get("duration_s") if isinstance(record, dict) else None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        seconds.append(float(value) if ok else None)
    return seconds + [None] * (count - len(seconds))


def _case(check: Check, duration_s: float | None) -> TestCase:
    case = _Case(name=check.id, classname=check.category, time=_seconds(duration_s))
    location = code_location(check.raw_evidence)
    if location:
        case.file, case.line = location
    if check.outcome == "passed":
        if check.message:
            case.system_out = check.message
        return case
    if check.outcome == "skipped" and not costs_points(check):
        case.result = [Skipped(message=check.message or "skipped", type_="skipped")]
        return case
    kind = Error if check.outcome == "error" else Failure
    entry = kind(message=check.message or check.outcome, type_=check.outcome)
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
