"""The report's pictures: a check's figure (docs/figures.md) drawn as one inline SVG, from the result document
alone. One module per kind; `render_figure` picks it. Every string from the document reaches the SVG through
ElementTree, which escapes it, so a student's key or reply is shown as text and can never become markup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import countdown, event_loop, race, round_trips, stampede

RENDERERS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "race": race.render,
    "countdown": countdown.render,
    "stampede": stampede.render,
    "round_trips": round_trips.render,
    "event_loop": event_loop.render,
}
KINDS = tuple(RENDERERS)


def figure_kind(figure: Any) -> str | None:
    """The kind of a figure this package can draw, or None (no figure, or one from a newer grader)."""
    if isinstance(figure, dict) and isinstance(figure.get("kind"), str) and figure["kind"] in RENDERERS:
        return figure["kind"]
    return None


def render_figure(figure: Any, figure_id: str = "figure") -> str:
    """The figure as an <svg> element (a string), or "" when there is nothing this package can draw.
    `figure_id` (the check's id) keeps the ids inside one picture apart from another's on the same page."""
    kind = figure_kind(figure)
    return RENDERERS[kind](figure, figure_id) if kind is not None else ""


__all__ = ["KINDS", "figure_kind", "render_figure"]
