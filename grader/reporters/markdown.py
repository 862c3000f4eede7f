"""The Markdown report (GitHub job summary, PR comment) from templates/report.md.j2."""

from __future__ import annotations

from typing import Any

from ._templates import render

HTML_REPORT = "report.html"  # the HTML report beside it, as a batch and the GitHub Action write them


def render_markdown(result: dict[str, Any], html_href: str | None = HTML_REPORT) -> str:
    """`html_href`: where the HTML report is, relative to the Markdown file (its pictures are linked there);
    None when there is none, and the pictures are only named."""
    return render("report.md.j2", result, html_href=html_href)
