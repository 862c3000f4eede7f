"""A failed check that points at the student's code carries the lines around it, and the HTML and Markdown
reports show them as a code block under the check."""

from __future__ import annotations

import copy
import json
import re
from html import unescape
from pathlib import Path
from typing import Any

from grader.reporters import render_html, render_markdown
from grader.static.snippet import code_evidence, snippet, where_snippet

GRADED = Path(__file__).resolve().parent / "results" / "graded.json"
MAIN = """import redis.asyncio as redis

app = FastAPI()


@app.middleware("http")
async def rate_limiter(request, call_next):
\tcount = await request.app.state.redis.incr(f"rate:ip:{request.client.host}")
    if count > 10:
        return JSONResponse(status_code=429, content={"detail": "Too <Many> Requests"})
    return await call_next(request)
"""


def _submission(tmp_path: Path) -> Path:
    root = tmp_path / "submission"
    (root / "backend" / "app").mkdir(parents=True)
    (root / "backend" / "app" / "main.py").write_text(MAIN)
    return root


def test_snippet_marks_the_line_and_numbers_its_neighbours(tmp_path):
    root = _submission(tmp_path)
    assert snippet(root, "backend/app/main.py", 9) == [
        "   7 | async def rate_limiter(request, call_next):",
        '   8 |     count = await request.app.state.redis.incr(f"rate:ip:{request.client.host}")',
        ">  9 |     if count > 10:",
        '  10 |         return JSONResponse(status_code=429, content={"detail": "Too <Many> Requests"})',
        "  11 |     return await call_next(request)",
    ]


def test_snippet_stops_at_the_file_edges(tmp_path):
    root = _submission(tmp_path)
    assert snippet(root, "backend/app/main.py", 1, around=1) == ["> 1 | import redis.asyncio as redis", "  2 |"]
    assert [line[:4] for line in snippet(root, "backend/app/main.py", 11, around=2)] == ["   9", "  10", "> 11"]


def test_snippet_of_what_cannot_be_read_is_empty(tmp_path):
    root = _submission(tmp_path)
    (tmp_path / "outside.py").write_text("secret = 1\n")
    assert snippet(root, "backend/app/missing.py", 3) == []
    assert snippet(root, "backend/app/main.py", 99) == []
    assert snippet(root, "backend/app/main.py", 0) == []
    assert snippet(root, "../outside.py", 1) == []  # never a file outside the submission


def test_where_snippet_reads_a_where_item(tmp_path):
    root = _submission(tmp_path)
    text = where_snippet(root, "backend/app/main.py:8: count = await request.app.state.redis.incr(...)", around=1)
    assert text.splitlines()[0] == "backend/app/main.py"
    assert text.splitlines()[2].startswith("> 8 |     count = await")
    assert where_snippet(root, "not a location") == ""
    assert code_evidence(root, []) == {}
    assert code_evidence(root, ["backend/app/gone.py:3: x = 1"]) == {}
    assert code_evidence(root, ["backend/app/main.py:8: count = ..."])["code"].startswith("backend/app/main.py\n")


def _document_with_code(tmp_path: Path) -> tuple[dict[str, Any], str]:
    """tests/results/graded.json with its failed ratelimit.threshold pointing at the student's limiter."""
    document = copy.deepcopy(json.loads(GRADED.read_text()))
    where = ["backend/app/main.py:9: if count > 10:"]
    check = next(c for c in document["checks"] if c["id"] == "ratelimit.threshold")
    assert check["outcome"] == "failed"
    check["evidence"] = {"where": where, **check["evidence"], **code_evidence(_submission(tmp_path), where)}
    return document, check["evidence"]["code"]


def test_html_report_shows_the_code_under_the_check(tmp_path):
    document, code = _document_with_code(tmp_path)
    html = render_html(document)
    card = html[html.index('id="check-ratelimit.threshold"'):]
    card = card[:card.index("</article>")]
    blocks = [unescape(b) for b in re.findall(r"<pre>(.*?)</pre>", card, re.DOTALL)]
    assert code in blocks
    assert "&lt;Many&gt;" in card and "<Many>" not in card  # the student's code is text, never markup


def test_markdown_report_shows_the_code_in_a_fenced_block(tmp_path):
    document, code = _document_with_code(tmp_path)
    markdown = render_markdown(document)
    section = markdown[markdown.index("`ratelimit.threshold`:"):]
    assert f"```text\n{code}\n```" in section
    assert "backend/app/main.py:9: if count > 10:" in section
