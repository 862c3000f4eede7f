"""`stampede` (cache.stampede): for each observed expiry, the database loads (writes) and the reads that found
the key missing, as bars against the writes tolerated; then each expiry's request stream on a time axis with
its loads marked, so a stampede shows as a cluster of writes right after the key ran out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._svg import (
    INK,
    MUTED,
    OK_FILL,
    PAPER,
    WIDTH,
    Axis,
    StatusLook,
    Svg,
    el,
    entries,
    fmt,
    heading,
    marker,
    num,
    numbers,
    opt_int,
    opt_num,
    swatch,
    text,
    tooltip,
    truncation_note,
)

MAX_EXPIRIES = 20
MAX_TIMES = 200  # loads or misses drawn per expiry
LEFT = 78
CHART_H = 120
STREAM_H = 30


@dataclass
class Expiry:
    index: int
    writes: int
    early_writes: int
    misses: int
    requests: int
    verdict: str
    expired_at_ms: float | None
    write_ms: list[float] = field(default_factory=list)
    miss_ms: list[float] = field(default_factory=list)


def read_expiries(value: Any) -> list[Expiry]:
    expiries = []
    for position, item in enumerate(entries(value, MAX_EXPIRIES), start=1):
        verdict = text(item.get("verdict"), 20)
        index = opt_int(item.get("index"))
        expiries.append(Expiry(
            index=position if index is None else index,
            writes=max(0, int(num(item.get("writes")))),
            early_writes=max(0, int(num(item.get("early_writes")))),
            misses=max(0, int(num(item.get("misses")))),
            requests=max(0, int(num(item.get("requests")))),
            verdict=verdict if verdict in ("pass", "fail", "inconclusive") else "inconclusive",
            expired_at_ms=opt_num(item.get("expired_at_ms")),
            write_ms=numbers(item.get("write_ms"), MAX_TIMES),
            miss_ms=numbers(item.get("miss_ms"), MAX_TIMES),
        ))
    return expiries


def render(figure: dict[str, Any], figure_id: str) -> str:
    expiries = read_expiries(figure.get("expiries"))
    max_writes = opt_int(figure.get("max_writes"))
    max_early = opt_int(figure.get("max_early_writes"))
    worst = max((e.writes for e in expiries), default=0)
    headline = f"{len(expiries)} expir{'y' if len(expiries) == 1 else 'ies'} observed · at most {worst} database " \
               f"load{'s' if worst != 1 else ''} at one expiry"
    if max_writes is not None:
        headline += f" · {max_writes} tolerated"
    svg = Svg("stampede", "Database loads and cache misses at each expiry of the cached list",
              text(figure.get("caption"), 400) or headline, figure_id)
    if max_writes is not None:
        svg.root.set("data-max-writes", str(max_writes))
    early = f"early recomputations tolerated: {max_early}" if max_early is not None else ""
    y = heading(svg, 0, [headline, early])
    legend = svg.group("legend")
    x = swatch(svg, legend, 8, y + 12, StatusLook("writes", "", OK_FILL, INK, None, 1.0), "writes (database loads)")
    x = swatch(svg, legend, x, y + 12, StatusLook("misses", "", svg.fill("hatch"), INK, None, 1.0), "misses")
    swatch(svg, legend, x, y + 12, StatusLook("tolerated", "", PAPER, INK, "4 3", 1.0), "tolerated writes (dashed)")
    y = _draw_bars(svg, expiries, max_writes, y + 30)
    y = _draw_streams(svg, expiries, y + 8)
    return svg.finish(truncation_note(svg, y, figure.get("truncated") is True) + 6)


def _draw_bars(svg: Svg, expiries: list[Expiry], max_writes: int | None, top: float) -> float:
    """Per expiry a writes bar and a misses bar on a count scale, the tolerated writes as a dashed line."""
    scale_max = max([1, *(e.writes for e in expiries), *(e.misses for e in expiries), max_writes or 0])
    base = top + CHART_H
    slot = min(120.0, (WIDTH - LEFT - 16) / max(1, len(expiries)))
    bar_w = min(32.0, slot / 2 - 6)

    def height(count: int) -> float:
        return CHART_H * count / scale_max

    def bar(parent: Any, x: float, count: int, fill: str, what: str) -> None:
        el(parent, "rect", class_=what, x=x, y=base - height(count), width=bar_w, height=max(0.5, height(count)),
           fill=fill, stroke=INK)
        svg.label(parent, x + bar_w / 2, base - height(count) - 3, str(count), text_anchor="middle", font_size=10)

    el(svg.root, "line", x1=LEFT, y1=base, x2=WIDTH - 8, y2=base, stroke=INK)
    svg.label(svg.root, LEFT - 8, top + 10, "count", text_anchor="end", fill=MUTED)
    for i, expiry in enumerate(expiries):
        x = LEFT + 8 + i * slot
        group = svg.group("expiry", data_index=expiry.index, data_writes=expiry.writes, data_misses=expiry.misses,
                          data_early_writes=expiry.early_writes, data_requests=expiry.requests,
                          data_verdict=expiry.verdict)
        tooltip(group, f"expiry {expiry.index}: {expiry.writes} writes, {expiry.misses} misses in "
                       f"{expiry.requests} requests ({expiry.early_writes} early): {expiry.verdict}")
        bar(group, x, expiry.writes, OK_FILL, "writes")
        bar(group, x + bar_w + 4, expiry.misses, svg.fill("hatch"), "misses")
        svg.label(group, x + bar_w + 2, base + 14, f"expiry {expiry.index}", text_anchor="middle")
        svg.label(group, x + bar_w + 2, base + 27, expiry.verdict, text_anchor="middle", font_weight=700,
                  class_="verdict")
    if max_writes is not None:
        line_y = base - height(max_writes)
        group = svg.group("tolerated", data_max_writes=max_writes)
        el(group, "line", x1=LEFT, y1=line_y, x2=WIDTH - 8, y2=line_y, stroke=INK, stroke_width=1.5,
           stroke_dasharray="6 4")
        svg.label(group, WIDTH - 8, line_y - 4, f"tolerated: {max_writes} writes", text_anchor="end",
                  stroke=PAPER, stroke_width=3, paint_order="stroke")
    return base + 34


def _draw_streams(svg: Svg, expiries: list[Expiry], top: float) -> float:
    """Each expiry's request stream: its loads (tall dark ticks) and misses (open circles) over time."""
    times = [t for e in expiries for t in (*e.write_ms, *e.miss_ms, e.expired_at_ms or 0.0)]
    if not expiries or not times:
        return top
    svg.label(svg.root, 8, top + 10, "Request stream after each expiry: ▮ database load, ○ miss, ┆ expired",
              fill=MUTED)
    axis = Axis.over(times, LEFT, WIDTH - 24, "ms")
    y = top + 18
    first = y
    for expiry in expiries:
        row = svg.group("stream", data_index=expiry.index)
        mid = y + STREAM_H / 2
        svg.label(row, LEFT - 8, mid + 4, f"expiry {expiry.index}", text_anchor="end")
        el(row, "line", x1=axis.x0, y1=mid, x2=axis.x1, y2=mid, stroke=MUTED, stroke_width=0.5)
        if expiry.expired_at_ms is not None:
            x = axis.x(expiry.expired_at_ms)
            el(row, "line", class_="expired", x1=x, y1=y + 2, x2=x, y2=y + STREAM_H - 2, stroke=INK,
               stroke_dasharray="3 2", data_at_ms=expiry.expired_at_ms)
        for at in expiry.miss_ms:
            miss = svg.group("miss", row, data_at_ms=at)
            marker(miss, "circle", axis.x(at), mid + 6, filled=False, size=2.5)
        for at in expiry.write_ms:
            write = svg.group("write", row, data_at_ms=at)
            tooltip(write, f"database load at {fmt(at)} ms")
            el(write, "rect", x=axis.x(at) - 1.5, y=y + 3, width=3, height=STREAM_H / 2 - 1, fill=INK)
        y += STREAM_H
    return axis.draw(svg, first, y + 2)
