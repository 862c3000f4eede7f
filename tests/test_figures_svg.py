"""The report's pictures (grader/reporters/figures/), drawn from hand-made figure documents that follow
docs/figures.md: each is well-formed XML whose marks say what the document says (one lane per request, the same
statuses and counts), student strings stay text, and the caps hold."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from figures_kit import FIGURE_CHECKS, Pictures, figure, with_figures

from grader.reporters import overview, render_html, render_markdown, write_reports
from grader.reporters.figures import KINDS, render_figure

HOSTILE = "</svg><script>alert(1)</script>&\"'\x1b[31m\x00"


def drawn(fig: dict, figure_id: str = "x") -> ET.Element:
    svg = render_figure(fig, figure_id)
    assert svg.startswith("<svg"), svg[:80]
    return ET.fromstring(svg)  # well-formed XML, or this raises


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def status_attr(status: int | None) -> str:
    return "none" if status is None else str(status)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_an_accessible_svg(kind: str) -> None:
    fig = figure(kind)
    root = drawn(fig)
    assert root.tag == "svg" and root.get("role") == "img" and root.get("data-kind") == kind
    title, desc = root.find("title"), root.find("desc")
    assert title is not None and title.text and desc is not None and desc.text == fig["caption"]
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert root.get("viewBox", "").startswith("0 0 ") and int(root.get("height", "0")) > 50
    page = by_class(root, "page")[0]
    assert page.get("fill") == "#ffffff"  # a white page: it prints
    assert not [e for e in root.iter() if e.tag in ("script", "foreignObject", "image", "a")]
    assert "http" not in render_figure(fig)  # nothing from the network, not even a namespace URL


def test_race_lanes_statuses_and_commands_match_the_document() -> None:
    fig = figure("race")
    root = drawn(fig)
    lanes = by_class(root, "lane")
    assert len(lanes) == len(fig["requests"])
    assert {int(g.get("data-lane")): g.get("data-status") for g in lanes} == {
        r["lane"]: status_attr(r["status"]) for r in fig["requests"]}
    served = sum(1 for g in lanes if g.get("data-status") == "200")
    assert served == fig["served"] == int(root.get("data-served"))
    assert int(root.get("data-expected-served")) == fig["expected_served"] == 10
    # every lane says its status in words too, not by its fill alone
    assert all(g.find("text[@class='status']").text == g.get("data-status") for g in lanes)
    hatched = {g.find("rect").get("fill") for g in lanes if g.get("data-status") == "429"}
    solid = {g.find("rect").get("fill") for g in lanes if g.get("data-status") == "200"}
    assert len(hatched) == 1 and hatched.pop().startswith("url(#") and solid.isdisjoint({"url(#fig-x-hatch)"})
    commands = by_class(root, "command")
    assert len(commands) == len(fig["commands"])
    assert Counter((c.get("data-command"), c.get("data-reply")) for c in commands) == Counter(
        (c["name"], c["reply"]) for c in fig["commands"])
    # GETs that read the same count are marked and said in words
    gets = Counter(c["reply"] for c in fig["commands"] if c["name"] == "GET")
    for mark in commands:
        if mark.get("data-command") == "GET":
            assert mark.get("data-same-reply") == (str(gets[mark.get("data-reply")]) if gets[mark.get("data-reply")] > 1
                                                   else None)
    [line] = [e.text for e in by_class(root, "same-replies")]
    assert line.startswith("Several GET got the same reply: 10 ×20")
    headline = by_class(root, "headline")[0].text
    assert "40 of 60 concurrent requests served" in headline and "expected 10" in headline
    assert {t.text for t in by_class(root, "tick")} >= {"0 ms", "50 ms", "100 ms"}


def test_statuses_differ_by_shape_and_label_not_hue() -> None:
    fig = figure("race")
    fig["requests"][:4] = [
        {"lane": 0, "start_ms": 0, "end_ms": 5, "status": 200, "label": "GET /a"},
        {"lane": 1, "start_ms": 0, "end_ms": 5, "status": 429, "label": "GET /a"},
        {"lane": 2, "start_ms": 0, "end_ms": 5, "status": 500, "label": "GET /a"},
        {"lane": 3, "start_ms": 0, "end_ms": 5, "status": None, "label": "GET /a"},
    ]
    root = drawn(fig)
    lanes = {g.get("data-status"): g for g in by_class(root, "lane")[:4]}
    looks = {status: (g.find("rect").get("fill"), g.find("rect").get("stroke-dasharray"),
                      g.find("rect").get("stroke-width")) for status, g in lanes.items()}
    assert len(set(looks.values())) == 4  # four different looks (fill pattern, dash, stroke) for four statuses
    assert looks["none"][1] is not None  # no answer: dashed
    assert [lanes[s].find("text[@class='status']").text for s in ("200", "429", "500", "none")] == [
        "200", "429", "500", "—"]
    legend = " ".join(t.text for t in by_class(root, "legend")[0].iter("text"))
    assert "200 served" in legend and "refused (429)" in legend and "500 error" in legend and "no answer" in legend


def test_countdown_shows_the_key_life_and_ttls() -> None:
    fig = figure("countdown")
    root = drawn(fig)
    events = by_class(root, "event")
    assert len(events) == len(fig["events"])
    assert Counter(e.get("data-event") for e in events) == Counter(e["event"] for e in fig["events"])
    ttls = [e.get("data-ttl-s") for e in events if e.get("data-event") == "ttl"]
    assert ttls == ["60", "59", "-2", "60"]
    labels = [t.text for e in events for t in e.iter("text")]
    assert "TTL 60 s" in labels and "TTL 59 s" in labels and "missing" in labels and "expired" in labels
    assert root.get("data-ttl-limit-s") == "60"
    assert len(by_class(root, "life")) == 2  # written -> expired, refilled -> still alive
    assert {t.text for t in by_class(root, "tick")} >= {"0 s", "1 s", "2 s", "3 s"}
    assert "Key products:all · TTL limit 60 s" == by_class(root, "headline")[0].text
    fig["events"][2]["ttl_s"] = 3600  # a TTL above the limit is called out
    labels = [t.text for t in drawn(fig).iter("text")]
    assert "TTL 3600 s > 60" in labels and "no TTL" not in labels
    fig["events"][2]["ttl_s"] = -1
    assert "no TTL" in [t.text for t in drawn(fig).iter("text")]


def test_stampede_bars_against_the_tolerated_writes() -> None:
    fig = figure("stampede")
    root = drawn(fig)
    expiries = by_class(root, "expiry")
    assert [(int(e.get("data-writes")), int(e.get("data-misses")), e.get("data-verdict")) for e in expiries] == [
        (x["writes"], x["misses"], x["verdict"]) for x in fig["expiries"]]
    [tolerated] = by_class(root, "tolerated")
    assert tolerated.get("data-max-writes") == "3" and tolerated.find("text").text == "tolerated: 3 writes"
    assert tolerated.find("line").get("stroke-dasharray")
    streams = by_class(root, "stream")
    assert [len(by_class(s, "write")) for s in streams] == [len(x["write_ms"]) for x in fig["expiries"]]
    assert [len(by_class(s, "miss")) for s in streams] == [len(x["miss_ms"]) for x in fig["expiries"]]
    assert [len(by_class(s, "expired")) for s in streams] == [1, 1]


def test_round_trips_one_pipeline_against_single_commands() -> None:
    singles = figure("round_trips")
    root = drawn(singles)
    trips = by_class(root, "round-trip")
    assert [(t.get("data-round-trip"), t.get("data-commands")) for t in trips] == [(str(i), "1") for i in range(1, 11)]
    assert root.get("data-pipelined") == "false" and root.get("data-commands-total") == "10"
    pipeline = copy.deepcopy(singles)
    pipeline.update(pipelined=True, groups=[{"round_trip": 1, "at_ms": 0.0,
                                              "commands": [c for g in singles["groups"] for c in g["commands"]]}])
    root = drawn(pipeline)
    [trip] = by_class(root, "round-trip")
    assert trip.get("data-round-trip") == "1" and trip.get("data-commands") == "10"
    assert [c.get("data-command") for c in by_class(trip, "command")] == ["ZADD"] * 10
    assert "10 write commands in 1 round trip (one pipeline)" in by_class(root, "headline")[0].text
    # a round trip of many commands draws a few and counts the rest
    pipeline["groups"][0]["commands"] *= 5
    [trip] = by_class(drawn(pipeline), "round-trip")
    assert trip.get("data-commands") == "50" and len(by_class(trip, "command")) == 12
    assert by_class(trip, "more")[0].text == "+ 38 more"


def test_event_loop_lanes_and_shaded_latency() -> None:
    fig = figure("event_loop")
    root = drawn(fig)
    lanes = by_class(root, "lane")
    assert len(lanes) == len(fig["requests"]) and {g.get("data-status") for g in lanes} == {"200"}
    [shade] = by_class(root, "latency")
    assert shade.get("data-latency-ms") == "100" and by_class(shade, "latency-shade")
    assert "one delayed reply: 100 ms" in [t.text for t in shade.iter("text")]
    assert "×9" in [t.text for t in shade.iter("text")]  # the staircase's steps are marked
    assert root.get("data-serialized-round-trips") == "9.2"


def test_student_strings_stay_text() -> None:
    fig = figure("race")
    fig["requests"][0]["label"] = HOSTILE
    fig["commands"][0].update(key=HOSTILE, reply=HOSTILE, name=HOSTILE)
    fig["caption"] = HOSTILE
    countdown = figure("countdown")
    countdown["key"] = HOSTILE
    countdown["events"][0]["label"] = HOSTILE
    for fig_ in (fig, countdown):
        svg = render_figure(fig_, HOSTILE)
        root = ET.fromstring(svg)
        assert not [e for e in root.iter() if e.tag == "script"]
        assert "<script" not in svg and svg.count("</svg>") == 1 and svg.endswith("</svg>")
        assert "\x1b" not in svg and "\x00" not in svg
        assert any("</svg><script>" in (value or "") for e in root.iter() for value in (e.text, *e.attrib.values()))
        assert all(":" not in (e.get("id") or "") and "<" not in (e.get("id") or "") for e in root.iter())
    fig["commands"][1]["reply"] = "half a pair \ud800"  # a lone surrogate, as a JSON escape may hold
    render_figure(fig).encode("utf-8")  # the page can be written
    doc = with_figures()
    race = next(c for c in doc["checks"] if c["id"] == "ratelimit.atomic_under_load")
    race["figure"] = fig
    page = render_html(doc)
    assert "<script" not in page.replace("&lt;script&gt;", "")
    assert Pictures(page).pictures["ratelimit.atomic_under_load"].caption.strip().startswith("</svg><script>")


def test_caps_hold_on_an_oversized_document() -> None:
    fig = figure("race")
    fig["requests"] = [dict(fig["requests"][0], lane=i) for i in range(500)]
    fig["commands"] = fig["commands"] * 20
    fig["truncated"] = True
    root = drawn(fig)
    assert len(by_class(root, "lane")) == 100 and len(by_class(root, "command")) == 200
    assert by_class(root, "truncated")
    countdown = figure("countdown")
    countdown["events"] = countdown["events"] * 20
    assert len(by_class(drawn(countdown), "event")) == 50


@pytest.mark.parametrize("kind", KINDS)
def test_odd_documents_still_draw(kind: str) -> None:
    bare = drawn({"kind": kind})
    assert bare.get("data-kind") == kind
    odd = {key: ("x" if not isinstance(value, bool) else value) for key, value in figure(kind).items()}
    odd.update(kind=kind, requests=[1, None, {"status": "200", "start_ms": "a"}], events=[{"at_s": float("nan")}],
               expiries=[{"writes": -3, "write_ms": ["a", 1.0]}], groups=[{"commands": "no"}], served=None)
    drawn(odd)
    huge = copy.deepcopy(figure(kind))
    for key in ("served", "latency_injected_ms", "max_writes", "commands_total", "ttl_limit_s"):
        huge[key] = 10**400  # JSON holds it; float() does not
    for entry in huge.get("requests", []) + huge.get("events", []) + huge.get("expiries", []):
        entry.update(end_ms=1e308, at_s=-1e308, writes=10**400)
    assert len(render_figure(huge)) < 10 * len(render_figure(figure(kind)))
    assert render_figure({"kind": "sunburst"}) == "" and render_figure(None) == "" and render_figure([1]) == ""


def test_html_report_puts_each_figure_next_to_its_check() -> None:
    doc = with_figures()
    page = render_html(doc)
    found = Pictures(page)
    assert sorted(found.figures_seen) == sorted(check_id for check_id, _ in FIGURE_CHECKS.values())  # once each
    for kind, (check_id, _) in FIGURE_CHECKS.items():
        picture = found.pictures[check_id]
        assert picture.svg.attrs["data-kind"] == kind
        assert " ".join(picture.caption.split()) == figure(kind)["caption"]
    # a failed check's picture is in its card; a passed one's right under its row, which has the anchor
    assert page.index('id="check-ratelimit.atomic_under_load"') < page.index('data-check="ratelimit.atomic_under_load"')
    row = page.index('<tr class="passed" id="check-cache.ttl">')
    assert row < page.index('data-check="cache.ttl"') < page.index("</table>", row)
    assert 'href="#figure-ratelimit.atomic_under_load">(picture)</a>' in page
    assert "<figure" not in render_html(with_figures() | {"checks": []})


def test_markdown_links_each_figure_to_the_html_report(tmp_path: Path) -> None:
    doc = with_figures()
    md = render_markdown(doc)
    assert "[(picture)](report.html#check-ratelimit.atomic_under_load)" in md
    assert "[(picture)](report.html#check-cache.ttl)" in md
    assert "**Picture:** [60 concurrent requests from 10.0.0.7: 40 served" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert all(row.count("|") - row.count("\\|") == 5 for row in rows)
    alone = render_markdown(doc, html_href=None)
    assert "(picture)" not in alone and "drawn in the HTML report, `--html`" in alone
    write_reports(doc, markdown=tmp_path / "md" / "summary.md", html=tmp_path / "pages" / "my report.html")
    written = (tmp_path / "md" / "summary.md").read_text(encoding="utf-8")
    assert "(../pages/my%20report.html#check-cache.stampede)" in written
    write_reports(doc, markdown=tmp_path / "only.md")
    assert "(picture)" not in (tmp_path / "only.md").read_text(encoding="utf-8")


def _class(served: list[int], stampede: list[str]) -> list[tuple[str, dict]]:
    results = []
    for i, (count, outcome) in enumerate(zip(served, stampede)):
        doc = with_figures()
        race = next(c for c in doc["checks"] if c["id"] == "ratelimit.atomic_under_load")
        race["figure"]["served"] = count
        stamp = next(c for c in doc["checks"] if c["id"] == "cache.stampede")
        stamp["outcome"] = outcome
        stamp["figure"]["expiries"][0]["writes"] = 8 + i
        results.append((f"student-{i}", doc))
    return results


def test_class_overview_draws_the_served_counts_and_the_stampede_failures() -> None:
    results = _class([10, 10, 14, 40, 10], ["passed", "failed", "failed", "passed", "skipped"])
    page = overview.render_index(overview.build_overview(results))
    found = Pictures(page).pictures
    bars = {int(b.attrs["data-served"]): b for b in found["served"].with_class("served-bar")}
    assert sorted(bars) == list(range(10, 41))  # every count between, so the gaps show
    assert {s: int(b.attrs["data-count"]) for s, b in bars.items() if b.attrs["data-count"] != "0"} == {
        10: 3, 14: 1, 40: 1}
    assert [s for s, b in bars.items() if b.attrs["data-expected"] == "true"] == [10]
    assert "3 of 5 submissions served exactly the expected count (10)" in found["served"].texts()
    stampede = found["stampede"]
    assert stampede.svg.attrs["data-failed"] == "2" and stampede.svg.attrs["data-ran"] == "4"  # the skip is left out
    assert [n.attrs["data-submission"] for n in stampede.with_class("failed-submission")] == ["student-1", "student-2"]
    assert [n.attrs["data-worst-writes"] for n in stampede.with_class("failed-submission")] == ["9", "10"]
    assert 'href="student-1/report.html#check-cache.stampede"' in page
    assert "<figure" not in overview.render_index(overview.build_overview([]))


def test_hand_made_figures_follow_the_result_schema() -> None:
    """The sample figures are written to docs/figures.md; once the result schema describes `figure`, they must
    validate against it too (a document with figures is what the reporters are fed)."""
    from jsonschema import Draft202012Validator

    from grader.schemas import result_schema

    schema = result_schema()
    if "figure" not in schema["$defs"]["check"].get("properties", {}):
        pytest.skip("the result schema does not describe checks[].figure")
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in Draft202012Validator(schema).iter_errors(with_figures())]
    assert not errors, "\n".join(errors)
