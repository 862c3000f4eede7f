"""`event_loop` (async.event_loop): the concurrent requests sent while every Redis reply was delayed, as lanes
over the delay's multiples - bars that overlap inside the first delay mean the event loop kept serving; a
staircase, one delay more per request, means each request waited for the others' Redis calls."""

from __future__ import annotations

from typing import Any

from ._lanes import LEFT, RIGHT, draw_lanes, read_requests
from ._svg import (
    FONT_SIZE,
    INK,
    MUTED,
    SHADE,
    WIDTH,
    Axis,
    Svg,
    el,
    fmt,
    heading,
    legend,
    opt_num,
    text,
    text_width,
    truncation_note,
)

MAX_MULTIPLES = 12  # delay lines drawn beyond the first (×2, ×3, ...)


def render(figure: dict[str, Any], figure_id: str) -> str:
    requests = read_requests(figure.get("requests"))
    latency = opt_num(figure.get("latency_injected_ms"))
    serialized = opt_num(figure.get("serialized_round_trips"))
    limit = opt_num(figure.get("max_serialized"))
    headline = f"{len(requests)} concurrent requests"
    if latency:
        headline += f", every Redis reply delayed by {fmt(latency)} ms"
    detail = ""
    if serialized is not None:
        detail = f"{fmt(serialized)} Redis round trips serialized" + (f" (limit {fmt(limit)})" if limit is not None
                                                                      else "")
    svg = Svg("event_loop", "Concurrent requests while Redis replies were delayed",
              text(figure.get("caption"), 400) or headline, figure_id)
    if latency is not None:
        svg.root.set("data-latency-injected-ms", fmt(latency))
    if serialized is not None:
        svg.root.set("data-serialized-round-trips", fmt(serialized))
    y = heading(svg, 0, [headline, detail])
    y = legend(svg, y, [r.status for r in requests])
    top = y + 28
    axis = Axis.over([r.end_ms for r in requests] + [latency or 0.0], LEFT, WIDTH - RIGHT, "ms")
    bottom = top + max(1, len({r.lane for r in requests})) * 12
    if latency:
        _shade_latency(svg, axis, latency, top, bottom)
    y = draw_lanes(svg, requests, axis, top)
    y = axis.draw(svg, top - 4, max(y, bottom) + 4)
    return svg.finish(truncation_note(svg, y, figure.get("truncated") is True) + 6)


def _shade_latency(svg: Svg, axis: Axis, latency: float, top: float, bottom: float) -> None:
    """The first injected delay shaded (where overlapping requests end), and a dashed line at each further
    multiple (where a staircase's steps fall)."""
    group = el(svg.backdrop, "g", class_="latency", data_latency_ms=latency)
    x0, x1 = axis.x(0), axis.x(latency)
    el(group, "rect", class_="latency-shade", x=x0, y=top - 14, width=max(1.0, x1 - x0), height=bottom - top + 14,
       fill=SHADE, stroke=MUTED, stroke_dasharray="2 2")
    caption = f"one delayed reply: {fmt(latency)} ms"
    svg.label(group, x0 + 3, top - 4, caption, font_size=9)
    caption_end = x0 + 3 + text_width(caption) * 9 / FONT_SIZE + 4
    for multiple in range(2, MAX_MULTIPLES + 2):
        at = multiple * latency
        if at > axis.end:
            break
        x = axis.x(at)
        el(group, "line", x1=x, y1=top - 14, x2=x, y2=bottom, stroke=INK, stroke_width=0.8, stroke_dasharray="4 3")
        if x + 2 > caption_end:  # a multiple's mark under the caption would be drawn over it
            svg.label(group, x + 2, top - 4, f"×{multiple}", font_size=9, fill=MUTED)
