"""Requests drawn as lanes (one row per lane, a bar from start to end in its status's look, the status beside
it): the race and the event loop pictures share them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._svg import (
    MAX_REQUESTS,
    MUTED,
    Axis,
    Svg,
    el,
    entries,
    fmt,
    num,
    opt_int,
    status_look,
    status_text,
    text,
    tooltip,
)

LANE_H = 12
LEFT = 64  # room for the lane numbers and the Redis rows' names
RIGHT = 40  # room for the status printed after a bar that ends at the axis' end


@dataclass
class Request:
    lane: int
    start_ms: float
    end_ms: float
    status: int | None
    label: str


def read_requests(value: Any) -> list[Request]:
    requests = []
    for index, item in enumerate(entries(value, MAX_REQUESTS)):
        start = num(item.get("start_ms"))
        lane = opt_int(item.get("lane"))
        requests.append(Request(
            lane=index if lane is None else lane,
            start_ms=start,
            end_ms=max(start, num(item.get("end_ms"), start)),
            status=opt_int(item.get("status")),
            label=text(item.get("label"), 40),
        ))
    return requests


def status_attr(status: int | None) -> str:
    """data-status: the HTTP status, or "none" when there was no answer."""
    return "none" if status is None else str(status)


def draw_lanes(svg: Svg, requests: list[Request], axis: Axis, top: float) -> float:
    """One <g class="lane"> per request; returns the y below the last lane."""
    rows = {lane: row for row, lane in enumerate(sorted({r.lane for r in requests}))}
    group = svg.group("lanes", data_count=len(requests))
    svg.label(group, LEFT - 6, top - 3, "request", text_anchor="end", fill=MUTED, font_size=9)
    for request in requests:
        y = top + rows[request.lane] * LANE_H
        look = status_look(svg, request.status)
        lane = svg.group("lane", group, data_lane=request.lane, data_status=status_attr(request.status),
                         data_start_ms=request.start_ms, data_end_ms=request.end_ms)
        tooltip(lane, f"request {request.lane + 1}: {request.label or 'request'} → {status_text(request.status)} "
                      f"({fmt(request.start_ms)}–{fmt(request.end_ms)} ms)")
        svg.label(lane, LEFT - 6, y + LANE_H - 3, f"{request.lane + 1}", text_anchor="end", font_size=9, fill=MUTED)
        x0, x1 = axis.x(request.start_ms), axis.x(request.end_ms)
        el(lane, "rect", class_="bar", x=x0, y=y + 2, width=max(2.0, x1 - x0), height=LANE_H - 4, fill=look.fill,
           stroke=look.stroke, stroke_width=look.stroke_width, stroke_dasharray=look.dash)
        svg.label(lane, max(x1, x0 + 2) + 3, y + LANE_H - 3, look.label, class_="status", font_size=9)
    return top + len(rows) * LANE_H
