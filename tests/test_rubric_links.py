"""Remediation links: every check of the shipped rubric names the official page that teaches its fix, and
a textbook section is a link only when a textbook URL is configured (its title otherwise)."""

from __future__ import annotations

import pytest

from grader import rubric as rubrics
from grader.checking import load_checks
from grader.errors import UsageError
from grader.reporters import render_markdown

KNOWN = set(load_checks())
SHIPPED = rubrics.load("redis-module", KNOWN)
OFFICIAL_HOSTS = ("https://redis.io/docs/latest/", "https://redis.readthedocs.io/en/stable/",
                  "https://fastapi.tiangolo.com/tutorial/", "https://docs.astral.sh/ruff/")


def test_the_shipped_rubric_has_no_placeholder_host() -> None:
    assert SHIPPED.docs_url == ""
    assert "example.org" not in SHIPPED.source.read_text(encoding="utf-8")


def test_every_check_links_an_official_page() -> None:
    for entry in SHIPPED.entries:
        assert entry.links, entry.check_id
        for title, url in entry.links:
            assert title and url.startswith(OFFICIAL_HOSTS), (entry.check_id, url)


@pytest.mark.parametrize(("check_id", "url"), [
    ("cache.ttl", "https://redis.io/docs/latest/commands/set/"),
    ("ratelimit.window", "https://redis.io/docs/latest/commands/expire/"),
    ("ratelimit.threshold", "https://fastapi.tiangolo.com/tutorial/middleware/"),
    ("ratelimit.lua", "https://redis.io/docs/latest/commands/eval/"),
    ("leaderboard.score", "https://redis.io/docs/latest/commands/zadd/"),
    ("leaderboard.top", "https://redis.io/docs/latest/commands/zrevrange/"),
    ("leaderboard.pipeline", "https://redis.io/docs/latest/develop/use/pipelining/"),
    ("async.client", "https://redis.readthedocs.io/en/stable/examples/asyncio_examples.html"),
    ("quality.tests", "https://fastapi.tiangolo.com/tutorial/testing/"),
])
def test_the_page_that_teaches_the_fix(check_id: str, url: str) -> None:
    entry = SHIPPED.entry(check_id)
    assert entry is not None and url in [u for _, u in entry.links]


def test_without_a_textbook_url_sections_are_titles_only() -> None:
    links = SHIPPED.remediation(SHIPPED.entry("ratelimit.lua"))
    official = [link for link in links if "id" not in link]
    sections = [link for link in links if "id" in link]
    assert official[0] == {"title": "Redis: EVAL (Lua scripts)", "url": "https://redis.io/docs/latest/commands/eval/"}
    assert links.index(official[0]) < links.index(sections[0])  # the official page first
    assert [s["id"] for s in sections] == ["RA3.2", "R3.1"]
    assert all(s["url"] == "" for s in sections)
    assert sections[0]["title"] == "RA3.2 Lua scripts (EVAL): atomic rate limiter"


def test_with_a_textbook_url_sections_are_links() -> None:
    links = SHIPPED.remediation(SHIPPED.entry("ratelimit.lua"), "https://book.example/redis/")
    sections = [link for link in links if "id" in link]
    assert sections[0]["url"] == "https://book.example/redis/ra3-lua#lua"


def test_a_section_without_url_renders_as_its_title() -> None:
    remediation = SHIPPED.remediation(SHIPPED.entry("ratelimit.lua"))
    doc = {"status": "graded", "score": 0, "grade": "C", "checks": [
        {"id": "ratelimit.lua", "outcome": "failed", "points": 0, "max_points": 6, "remediation": remediation}]}
    md = render_markdown(doc)
    assert "[Redis: EVAL (Lua scripts)](https://redis.io/docs/latest/commands/eval/)" in md
    assert "RA3.2 Lua scripts (EVAL): atomic rate limiter" in md and "](ra3-lua" not in md


def _rubric(tmp_path, links: str):
    path = tmp_path / "r.toml"
    path.write_text('name = "x"\n[grades]\nS = 90\nA = 80\nB = 70\nC = 0\n[sections]\n'
                    f'[checks."app.starts"]\npoints = 1\nlinks = {links}\n', encoding="utf-8")
    return rubrics.load(str(path), KNOWN)


def test_links_are_read_from_the_rubric(tmp_path) -> None:
    rubric = _rubric(tmp_path, '[{ title = "Docs", url = "https://docs.example/x" }]')
    entry = rubric.entries[0]
    assert entry.links == (("Docs", "https://docs.example/x"),) and "links" not in entry.options
    assert rubric.remediation(entry) == [{"title": "Docs", "url": "https://docs.example/x"}]


@pytest.mark.parametrize(("links", "message"), [
    ('["https://docs.example"]', "tables with a title and a url"),
    ('[{ title = "x" }]', "tables with a title and a url"),
    ('[{ title = "x", url = "javascript:alert(1)" }]', r"not an http\(s\) URL"),
])
def test_bad_links_are_usage_errors(tmp_path, links: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _rubric(tmp_path, links)
