"""The pictures as a browser builds them: the HTML report (and the class overview) of documents holding every
kind of figure, loaded in headless Chromium; the assertions read the DOM it built (lanes, statuses, counts as in
the result document), never pixels. Each page is also screenshotted into the artifacts folder
($REDIS_GRADER_ARTIFACTS, else artifacts/screenshots/ at the repository's root) for a person to look at."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from figures_kit import FIGURE_CHECKS, figure, load, with_figures

from grader.reporters import overview, render_html

pytestmark = pytest.mark.browser


def test_report_pictures_as_the_browser_builds_them(tmp_path: Path) -> None:
    doc = with_figures()
    found = load(render_html(doc), "report-every-figure", tmp_path)
    assert sorted(found.figures_seen) == sorted(check_id for check_id, _ in FIGURE_CHECKS.values())
    pictures = {kind: found.pictures[check_id] for kind, (check_id, _) in FIGURE_CHECKS.items()}
    for kind, picture in pictures.items():
        assert picture.svg.attrs["data-kind"] == kind and picture.svg.attrs["role"] == "img"
        assert " ".join(picture.caption.split()) == figure(kind)["caption"]

    race, race_doc = pictures["race"], figure("race")
    lanes = race.with_class("lane")
    assert len(lanes) == len(race_doc["requests"])
    assert Counter(n.attrs["data-status"] for n in lanes) == Counter(str(r["status"]) for r in race_doc["requests"])
    assert sum(1 for n in lanes if n.attrs["data-status"] == "200") == race_doc["served"]
    assert race.svg.attrs["data-served"] == str(race_doc["served"])
    assert race.svg.attrs["data-expected-served"] == str(race_doc["expected_served"])
    assert Counter((n.attrs["data-command"], n.attrs["data-reply"]) for n in race.with_class("command")) == Counter(
        (c["name"], c["reply"]) for c in race_doc["commands"])

    events = pictures["countdown"].with_class("event")
    assert Counter(n.attrs["data-event"] for n in events) == Counter(e["event"] for e in figure("countdown")["events"])
    expiries = pictures["stampede"].with_class("expiry")
    assert [n.attrs["data-writes"] for n in expiries] == [str(e["writes"]) for e in figure("stampede")["expiries"]]
    trips = pictures["round_trips"].with_class("round-trip")
    assert [n.attrs["data-commands"] for n in trips] == [str(len(g["commands"])) for g in figure("round_trips")["groups"]]
    assert len(pictures["event_loop"].with_class("lane")) == len(figure("event_loop")["requests"])
    assert pictures["event_loop"].with_class("latency-shade")


def test_hostile_strings_are_text_in_the_browser(tmp_path: Path) -> None:
    doc = with_figures()
    race = next(c for c in doc["checks"] if c["id"] == "ratelimit.atomic_under_load")
    race["figure"]["commands"][0]["key"] = "</svg><script>document.title='owned'</script>"
    race["figure"]["requests"][0]["label"] = "<img src=x onerror=alert(1)>"
    found = load(render_html(doc), "report-hostile-strings", tmp_path, height=2000)
    picture = found.pictures["ratelimit.atomic_under_load"]
    assert not [n for n in picture.nodes if n.tag in ("script", "img")]
    assert picture.with_class("command")[0].attrs["data-key"].startswith("</svg><script>")
    assert len(picture.with_class("lane")) == len(race["figure"]["requests"])  # the svg was not cut short


def test_class_overview_pictures_in_the_browser(tmp_path: Path) -> None:
    results = []
    for i, (served, outcome) in enumerate([(10, "passed"), (14, "failed"), (10, "failed"), (50, "passed")]):
        doc = with_figures()
        next(c for c in doc["checks"] if c["id"] == "ratelimit.atomic_under_load")["figure"]["served"] = served
        next(c for c in doc["checks"] if c["id"] == "cache.stampede")["outcome"] = outcome
        results.append((f"student {i}", doc))
    found = load(overview.render_index(overview.build_overview(results)), "class-overview", tmp_path,
                 height=3000)
    bars = found.pictures["served"].with_class("served-bar")
    counts = {int(n.attrs["data-served"]): int(n.attrs["data-count"]) for n in bars if n.attrs["data-count"] != "0"}
    assert counts == {10: 2, 14: 1, 50: 1}
    assert [n.attrs["data-served"] for n in bars if n.attrs["data-expected"] == "true"] == ["10"]
    stampede = found.pictures["stampede"]
    assert stampede.svg.attrs["data-failed"] == "2" and stampede.svg.attrs["data-ran"] == "4"
    assert [n.attrs["data-submission"] for n in stampede.with_class("failed-submission")] == ["student 1", "student 2"]
    links = [n.attrs.get("href") for n in stampede.nodes if n.tag == "a"]
    assert links == ["student%201/report.html#check-cache.stampede", "student%202/report.html#check-cache.stampede"]
