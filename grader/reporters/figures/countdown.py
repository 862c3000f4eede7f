"""`countdown` (cache.ttl, cache.refill_after_expiry, ratelimit.window): one key's life on a time axis in seconds
- when it was written, the TTL seen at each observation, when it expired, when it was refilled - and the requests
that hit or missed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._svg import (
    GRID,
    INK,
    MAX_EVENTS,
    MUTED,
    PAPER,
    WIDTH,
    Axis,
    Svg,
    el,
    entries,
    fmt,
    heading,
    marker,
    num,
    opt_int,
    opt_num,
    pack,
    text,
    text_width,
    tooltip,
    truncation_note,
)

LEFT = 78
RIGHT = 48
LABEL_ROWS = 2
LABEL_H = 11
ROW_H = LABEL_ROWS * LABEL_H + 16
# Which row an event is drawn in, and its mark (shape, filled).
ROWS = {"key": ("written", "refilled", "expired"), "TTL": ("ttl",), "requests": ("hit", "miss", "request")}
SHAPES = {"written": ("diamond", True), "refilled": ("diamond", False), "expired": ("cross", True),
          "ttl": ("circle", True), "hit": ("circle", True), "miss": ("circle", False), "request": ("square", False)}


@dataclass
class Event:
    at_s: float
    event: str
    ttl_s: float | None
    status: int | None
    label: str

    def mark_text(self, limit: float | None = None) -> str:
        """What is printed above the mark (a TTL above the limit says so)."""
        if self.event == "ttl":
            over = limit is not None and self.ttl_s is not None and self.ttl_s > limit
            return ttl_text(self.ttl_s) + (f" > {fmt(limit)}" if over else "")
        if self.event in ("hit", "miss"):
            return self.event if self.status is None else f"{self.event} {self.status}"
        if self.event == "request":
            return "—" if self.status is None else str(self.status)
        return self.event


def ttl_text(ttl_s: float | None) -> str:
    """The TTL as Redis answers it: -1 the key has no expiry, -2 there is no key."""
    if ttl_s is None:
        return "TTL ?"
    if ttl_s == -1:
        return "no TTL"
    if ttl_s == -2:
        return "missing"
    return f"TTL {fmt(ttl_s)} s"


def read_events(value: Any) -> list[Event]:
    events = []
    for item in entries(value, MAX_EVENTS):
        kind = text(item.get("event"), 20)
        events.append(Event(num(item.get("at_s")), kind if kind in SHAPES else "request", opt_num(item.get("ttl_s")),
                            opt_int(item.get("status")), text(item.get("label"), 60)))
    return sorted(events, key=lambda e: e.at_s)


def render(figure: dict[str, Any], figure_id: str) -> str:
    events = read_events(figure.get("events"))
    key = text(figure.get("key"), 60) or "the key"
    limit = opt_num(figure.get("ttl_limit_s"))
    counts = {kind: sum(1 for e in events if e.event == kind) for kind in SHAPES}
    headline = f"Key {key}" + (f" · TTL limit {fmt(limit)} s" if limit is not None else "")
    tally = " · ".join(f"{n} {kind}" for kind, n in counts.items() if n and kind != "ttl")
    svg = Svg("countdown", f"The life of the key {key} over time", text(figure.get("caption"), 400) or headline,
              figure_id)
    if limit is not None:
        svg.root.set("data-ttl-limit-s", fmt(limit))
    y = heading(svg, 0, [headline, tally])
    y = _legend(svg, y)
    axis = Axis.over([e.at_s for e in events], LEFT, WIDTH - RIGHT, "s")
    top = y + 6
    _draw_life(svg, events, axis, top + ROW_H - 8)
    for index, (row, kinds) in enumerate(ROWS.items()):
        _draw_row(svg, row, [e for e in events if e.event in kinds], axis, top + index * ROW_H, limit)
    bottom = top + len(ROWS) * ROW_H
    for event in (e for e in events if e.event == "expired"):
        el(svg.backdrop, "line", x1=axis.x(event.at_s), y1=top, x2=axis.x(event.at_s), y2=bottom, stroke=INK,
           stroke_width=1, stroke_dasharray="4 3", class_="expiry-line")
    y = axis.draw(svg, top, bottom + 2)
    return svg.finish(truncation_note(svg, y, figure.get("truncated") is True) + 6)


def _legend(svg: Svg, y: float) -> float:
    group = svg.group("legend")
    x = 8.0
    for kind, (shape, filled) in SHAPES.items():
        words = "TTL seen" if kind == "ttl" else kind
        marker(group, shape, x + 4, y + 8, filled=filled, size=3.5)
        svg.label(group, x + 12, y + 12, words)
        x += 12 + text_width(words) + 14
    return y + 20


def _draw_life(svg: Svg, events: list[Event], axis: Axis, y: float) -> None:
    """The key's life as bars: from each write (or refill) to the next expiry, or to the end of what was seen."""
    born: float | None = None
    for event in [*events, Event(axis.end, "end", None, None, "")]:
        if event.event in ("written", "refilled") and born is None:
            born = event.at_s
        elif event.event in ("expired", "end") and born is not None:
            el(svg.backdrop, "rect", class_="life", x=axis.x(born), y=y - 4,
               width=max(1.0, axis.x(event.at_s) - axis.x(born)), height=8, fill=GRID, stroke=MUTED)
            born = None


def _draw_row(svg: Svg, name: str, events: list[Event], axis: Axis, top: float, limit: float | None) -> None:
    row = svg.group("event-row", data_row=name)
    mark_y = top + ROW_H - 8
    svg.label(row, LEFT - 8, mark_y + 4, name, text_anchor="end", fill=MUTED)
    el(row, "line", x1=axis.x0, y1=mark_y, x2=axis.x1, y2=mark_y, stroke=MUTED, stroke_width=0.5)
    spans = []
    for event in events:
        x = axis.x(event.at_s)
        width = text_width(event.mark_text(limit))
        spans.append((x - width / 2, x + width / 2))
    for event, label_row in zip(events, pack(spans, LABEL_ROWS, gap=3)):
        x = axis.x(event.at_s)
        group = svg.group("event", row, data_event=event.event, data_at_s=event.at_s, data_ttl_s=event.ttl_s,
                          data_status=event.status, data_label=event.label or None)
        words = event.mark_text(limit)
        tooltip(group, f"{fmt(event.at_s)} s: {words}" + (f" ({event.label})" if event.label else ""))
        shape, filled = SHAPES[event.event]
        marker(group, shape, x, mark_y, filled=filled)
        if label_row is not None:
            svg.label(group, x, mark_y - 8 - label_row * LABEL_H, words, text_anchor="middle", font_size=9,
                      class_="event-label", stroke=PAPER, stroke_width=2.5, paint_order="stroke",
                      font_weight=700 if " > " in words else None)
