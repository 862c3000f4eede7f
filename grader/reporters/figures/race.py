"""`race` (ratelimit.atomic_under_load): one lane per concurrent request, and beneath them the limiter's Redis
commands, one row per command name, each with its reply, so GETs that read the same count stand out."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ._lanes import LEFT, RIGHT, draw_lanes, read_requests
from ._svg import (
    INK,
    MUTED,
    WIDTH,
    Axis,
    Command,
    Svg,
    el,
    fmt,
    heading,
    legend,
    opt_int,
    opt_num,
    pack,
    read_commands,
    text,
    text_width,
    tooltip,
    truncation_note,
)

MAX_ROWS = 6  # command names with a row of their own; the rest share a row "other"
LABEL_ROWS = 3
LABEL_H = 10
MARK_H = 10
# Commands whose reply is the count the limiter decides on: several of them with the same reply is the race.
COUNT_READS = {"GET", "INCR", "INCRBY", "DECR", "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO",
               "HGET", "HINCRBY"}


def render(figure: dict[str, Any], figure_id: str) -> str:
    requests = read_requests(figure.get("requests"))
    commands = read_commands(figure.get("commands"))
    served = opt_int(figure.get("served"))
    if served is None:
        served = sum(1 for r in requests if r.status is not None and 200 <= r.status < 300)
    expected = opt_int(figure.get("expected_served"))
    latency = opt_num(figure.get("latency_injected_ms"))
    headline = f"{served} of {len(requests)} concurrent requests served"
    if expected is not None:
        headline += f" · expected {expected} (as many as one after another)"
        if served > expected:
            headline += f" · {served - expected} too many"
    svg = Svg("race", "Concurrent requests from one client and the limiter's Redis commands",
              text(figure.get("caption"), 400) or headline, figure_id)
    svg.root.set("data-served", str(served))
    if expected is not None:
        svg.root.set("data-expected-served", str(expected))
    y = heading(svg, 0, [headline, f"{fmt(latency)} ms added to every Redis reply" if latency else ""])
    y = legend(svg, y, [r.status for r in requests])
    top = y + 14
    ends = [r.end_ms for r in requests] + [c.end_ms if c.end_ms is not None else c.at_ms for c in commands]
    axis = Axis.over(ends, LEFT, WIDTH - RIGHT, "ms")
    y = draw_lanes(svg, requests, axis, top)
    y = _draw_commands(svg, commands, axis, y + 10) if commands else y
    y = axis.draw(svg, top - 2, y + 4)
    for line in _same_replies(commands):
        svg.label(svg.root, 8, y + 4, line, class_="same-replies")
        y += 16
    return svg.finish(truncation_note(svg, y, figure.get("truncated") is True) + 6)


def _row_names(commands: list[Command]) -> list[str]:
    names = list(dict.fromkeys(c.name for c in commands))
    return names if len(names) <= MAX_ROWS else [*names[: MAX_ROWS - 1], "other"]


def _draw_commands(svg: Svg, commands: list[Command], axis: Axis, top: float) -> float:
    """The Redis lane: a row per command name, a mark per command (sent → replied) with its reply above it."""
    names = _row_names(commands)
    repeats = _repeats(commands)
    group = svg.group("commands", data_count=len(commands))
    svg.label(group, 8, top + 10, "Redis commands (reply above each)", fill=MUTED)
    y = top + 16
    for name in names:
        mine = [c for c in commands if c.name == name or (name == "other" and c.name not in names)]
        row = svg.group("command-row", group, data_name=name)
        labelled = name in COUNT_READS  # an "OK" above every SET would only hide the counts
        mark_y = y + (LABEL_ROWS * LABEL_H if labelled else 0) + 2
        svg.label(row, LEFT - 6, mark_y + MARK_H - 1, name, text_anchor="end", font_size=10)
        el(row, "line", x1=axis.x0, y1=mark_y + MARK_H / 2, x2=axis.x1, y2=mark_y + MARK_H / 2, stroke=MUTED,
           stroke_width=0.5)
        ordered = sorted(mine, key=lambda c: c.at_ms)
        spans = [(axis.x(c.at_ms), axis.x(c.at_ms) + text_width(c.reply)) for c in ordered]
        for command, label_row in zip(ordered, pack(spans, LABEL_ROWS, gap=3)):
            same = repeats.get((command.name, command.reply), 0)
            mark = svg.group("command", row, data_command=command.name, data_reply=command.reply,
                             data_key=command.key, data_at_ms=command.at_ms, data_end_ms=command.end_ms,
                             data_same_reply=same if same > 1 else None)
            tooltip(mark, command.describe() + (f" (the same reply as {same - 1} other {command.name})"
                                                if same > 1 else ""))
            x = axis.x(command.at_ms)
            if command.end_ms is not None:
                el(mark, "line", x1=x, y1=mark_y + MARK_H / 2, x2=axis.x(command.end_ms), y2=mark_y + MARK_H / 2,
                   stroke=INK, stroke_width=2, stroke_opacity=0.35)
            el(mark, "line", x1=x, y1=mark_y, x2=x, y2=mark_y + MARK_H, stroke=INK, stroke_width=1.5)
            if labelled and label_row is not None and command.reply:
                label_y = mark_y - 3 - label_row * LABEL_H
                svg.label(mark, x, label_y, command.reply, font_size=9, class_="reply",
                          font_weight=700 if same > 1 else None)
        y = mark_y + MARK_H + 6
    return y


def _repeats(commands: list[Command]) -> Counter[tuple[str, str]]:
    """How many commands of one name got each reply (for the names whose reply is the count)."""
    return Counter((c.name, c.reply) for c in commands if c.name in COUNT_READS and c.reply)


def _same_replies(commands: list[Command]) -> list[str]:
    """Lines like "7 GET read the same reply 3 · 6 GET read 4": the race, said in words."""
    repeated = [(name, reply, n) for (name, reply), n in _repeats(commands).items() if n > 1]
    if not repeated:
        return []
    by_name: dict[str, list[str]] = {}
    for name, reply, n in sorted(repeated, key=lambda item: (item[0], -item[2], item[1])):
        by_name.setdefault(name, []).append(f"{reply} ×{n}")
    lines = []
    for name, parts in by_name.items():
        shown = " · ".join(parts[:8]) + (f" · and {len(parts) - 8} more" if len(parts) > 8 else "")
        lines.append(f"Several {name} got the same reply: {shown}")
    return lines
