"""grader.reporters.overview: the class overview (index.html) as pure logic over result documents."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import ROOT

from grader import batch
from grader.batch import BatchOptions
from grader.reporters import overview

RESULTS = ROOT / "tests" / "results"


def _doc(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def _store(out: Path, name: str, doc: dict) -> None:
    (out / name).mkdir(parents=True, exist_ok=True)
    batch.write_submission(out / name, doc, batch.grading_settings(BatchOptions(out=out)))


def _check(cid: str, outcome: str, applicable: bool = True) -> dict:
    return {"id": cid, "title": cid.upper(), "category": cid.split(".")[0], "outcome": outcome,
            "points": 0, "max_points": 5, "applicable": applicable}


def test_overview_counts_grades_and_ranks_checks_hardest_first() -> None:
    def graded(grade: str, score: float, *checks: dict) -> dict:
        return {"status": "graded", "grade": grade, "score": score, "checks": list(checks)}

    results = [
        ("a", graded("S", 95, _check("x.one", "passed"), _check("x.two", "passed"), _check("x.three", "skipped", False))),
        ("b", graded("C", 40, _check("x.one", "failed"), _check("x.two", "passed"), _check("x.three", "skipped", False))),
        ("c", graded("C", 10, _check("x.one", "failed"), _check("x.two", "skipped"), _check("x.three", "skipped", False))),
        ("d", _doc("error")),
    ]
    summary = overview.build_overview(results)
    assert summary.distribution == [("S", 1), ("A", 0), ("B", 0), ("C", 2), ("not graded", 1)]
    assert [c.id for c in summary.checks] == ["x.one", "x.two", "x.three"]
    one, two, three = summary.checks
    assert one.counts == {"passed": 1, "failed": 2, "error": 0, "skipped": 0} and one.percent == "33%"
    assert two.rate == 1.0 and two.counts["skipped"] == 1  # a skip is not a failure of this check
    assert three.rate is None and three.not_counted == 3
    assert summary.mean == 48.33 and summary.median == 40
    assert summary.graded == 3 and summary.share(2) == 50


def test_index_escapes_names_and_links_each_report() -> None:
    evil = "<script>alert(1)</script> & co"
    results = [("alice smith", _doc("graded")), (evil, _doc("error"))]
    html = overview.render_index(overview.build_overview(results))
    assert 'href="alice%20smith/report.html"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "no Redis could be started" in html  # the error row says why
    assert "ratelimit.threshold" in html  # a failed check of alice's, in her row and the pass-rate table
    assert '<meta name="viewport"' in html and "http" not in html.replace("https://textbook", "")


def test_a_folder_named_in_bytes_that_are_not_utf8_is_shown_escaped_and_linked_by_its_bytes(tmp_path: Path) -> None:
    """An LMS archive made on Windows may name a student in cp1251: on disk, bytes that are not UTF-8."""
    folder = b"\xef\xe5\xf2\xf0 ivanov".decode("utf-8", "surrogateescape")
    doc = _doc("graded")
    _store(tmp_path, folder, doc)
    path = overview.write_overview(tmp_path, batch.collect_results(tmp_path))[1]
    html = path.read_text(encoding="utf-8")
    assert 'href="%EF%E5%F2%F0%20ivanov/report.html"' in html and "\\xef\\xe5\\xf2\\xf0 ivanov" in html


def test_write_overview_over_every_result(tmp_path: Path) -> None:
    _store(tmp_path, "zoe", _doc("error"))
    _store(tmp_path, "adam", _doc("graded"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / batch.RESULT).write_text("{")
    gradebook, index = batch.write_overview(tmp_path)
    rows = list(csv.DictReader(gradebook.open(encoding="utf-8")))
    assert [(r["name"], r["status"]) for r in rows] == [("alice", "graded"), ("bob", "error")]  # the documents' names
    assert "adam/report.html" in index.read_text() and "zoe/report.html" in index.read_text()
    assert not list(tmp_path.glob(".*.tmp"))




def test_gradebook_has_the_commit_points_per_check_and_the_scored_skips(tmp_path: Path) -> None:
    doc = {"status": "graded", "grade": "C", "score": 40, "max_score": 100,
           "submission": {"name": "a", "path": "/a", "commit": "abc123", "dirty": True},
           "checks": [{**_check("x.one", "passed"), "points": 5}, _check("x.two", "skipped"),
                      _check("x.three", "skipped", False)]}
    clean = {**doc, "submission": {"name": "b", "path": "/b", "commit": "def456", "dirty": False}}
    unknown = {**doc, "submission": {"name": "c", "path": "/c", "commit": None}}
    path = tmp_path / "gradebook.csv"
    from grader.reporters.gradebook import write_gradebook

    write_gradebook([doc, clean, unknown], path)
    with path.open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ["name", "status", "grade", "score", "max_score", "commit", "x.one", "x.two",
                                 "x.three", "x.one points", "x.two points", "x.three points", "duration_s",
                                 "scored_skips", "error"]
    assert [r["commit"] for r in rows] == ["abc123+dirty", "def456", ""]
    first = rows[0]
    assert (first["x.one points"], first["x.two points"], first["x.three points"]) == ("5", "0", "")
    assert first["scored_skips"] == "x.two"  # x.three is left out of the score: not a scored skip


def test_the_overview_names_a_folder_on_one_line_with_its_control_characters_as_codes() -> None:
    """index.html shows each folder's name; one holding a title sequence, U+009B or a newline shows as text, and
    two folders whose names differ only by a control character read as two."""
    name = "evil\x1b]0;title\x07\x9b2J\u202eRTL\nNL"
    view = overview.build_overview([(name, _doc("graded")), ("\x01ctl", _doc("graded")), ("ctl", _doc("graded"))])
    assert view.rows[0].folder == view.rows[0].report.name == r"evil\x1b]0;title\x07\x9b2J\u202eRTL\x0aNL"
    assert [row.folder for row in view.rows[1:]] == [r"\x01ctl", "ctl"]
