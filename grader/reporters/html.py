"""The HTML report from templates/report.html.j2: one self-contained page (inline CSS, nothing fetched from
the network, no scripts) that reads on a phone and prints cleanly."""

from __future__ import annotations

from typing import Any

from ._templates import render


def render_html(result: dict[str, Any]) -> str:
    return render("report.html.j2", result)
