"""The Markdown report (GitHub job summary, PR comment) from templates/report.md.j2."""

from __future__ import annotations

from typing import Any

from ._templates import render


def render_markdown(result: dict[str, Any]) -> str:
    return render("report.md.j2", result)
