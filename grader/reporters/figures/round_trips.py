"""`round_trips` (leaderboard.pipeline): the seed's write commands grouped by the round trip they arrived in -
one pipeline is one tall column, N single commands are N columns of one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._svg import (
    CHAR_W,
    INK,
    MUTED,
    PAPER,
    SHADE,
    WIDTH,
    Command,
    Svg,
    el,
    entries,
    fmt,
    heading,
    num,
    opt_int,
    read_commands,
    text,
    tooltip,
    truncation_note,
)

MAX_GROUPS = 100
MAX_CELLS = 12  # commands drawn per round trip; the rest are counted in a last cell
PER_LINE = 8  # round trips side by side before the next line of them
CELL_H = 16
COLUMN_W = 86
GAP = 8


@dataclass
class RoundTrip:
    number: int
    at_ms: float
    commands: list[Command]
    listed: int  # how many commands the document lists for it (what data-commands says)


def read_groups(value: Any) -> list[RoundTrip]:
    groups = []
    for position, item in enumerate(entries(value, MAX_GROUPS), start=1):
        number = opt_int(item.get("round_trip"))
        listed = item.get("commands") if isinstance(item.get("commands"), list) else []
        groups.append(RoundTrip(position if number is None else number, num(item.get("at_ms")),
                                read_commands(listed), len(listed)))
    return groups


def render(figure: dict[str, Any], figure_id: str) -> str:
    groups = read_groups(figure.get("groups"))
    total = opt_int(figure.get("commands_total"))
    total = sum(g.listed for g in groups) if total is None else total
    trips = len(groups)
    pipelined = figure.get("pipelined") is True
    how = "one pipeline" if pipelined else ("one round trip per command" if trips and trips >= total
                                            else "not one pipeline")
    headline = f"{total} write command{'s' if total != 1 else ''} in {trips} round trip{'s' if trips != 1 else ''}" \
               f" ({how})"
    svg = Svg("round_trips", "The seed's write commands, grouped by Redis round trip",
              text(figure.get("caption"), 400) or headline, figure_id)
    svg.root.set("data-commands-total", str(total))
    svg.root.set("data-round-trips", str(trips))
    svg.root.set("data-pipelined", "true" if pipelined else "false")
    y = heading(svg, 0, [headline, "Each column is one round trip: what the app sent before it waited for a reply."])
    # Fewer round trips get wider columns, so their commands' keys fit.
    width = max(COLUMN_W, min(180.0, (WIDTH - 16) / max(1, min(trips, PER_LINE)) - GAP))
    for start in range(0, len(groups), PER_LINE):
        y = _draw_line(svg, groups[start : start + PER_LINE], y + 6, width)
    return svg.finish(truncation_note(svg, y, figure.get("truncated") is True) + 6)


def _draw_line(svg: Svg, groups: list[RoundTrip], top: float, width: float) -> float:
    """One line of round trips side by side; returns the y below the tallest."""
    tallest = 0.0
    fits = int((width - 12) / CHAR_W)  # characters of "NAME key" a cell holds at its font size
    for i, trip in enumerate(groups):
        x = 8 + i * (width + GAP)
        shown = trip.commands[:MAX_CELLS]
        hidden = trip.listed - len(shown)
        cells = len(shown) + (1 if hidden > 0 else 0)
        height = 18 + max(1, cells) * CELL_H + 4
        tallest = max(tallest, height)
        group = svg.group("round-trip", data_round_trip=trip.number, data_commands=trip.listed,
                          data_at_ms=trip.at_ms)
        tooltip(group, f"round trip {trip.number} at {fmt(trip.at_ms)} ms: {trip.listed} command"
                       f"{'s' if trip.listed != 1 else ''}")
        el(group, "rect", x=x, y=top, width=width, height=height, fill=SHADE, stroke=INK, rx=3)
        svg.label(group, x + 6, top + 13, f"#{trip.number}: {trip.listed} cmd", font_weight=600)
        for row, command in enumerate(shown):
            cell = svg.group("command", group, data_command=command.name, data_key=command.key,
                             data_reply=command.reply)
            tooltip(cell, command.describe())
            cy = top + 18 + row * CELL_H
            el(cell, "rect", x=x + 4, y=cy, width=width - 8, height=CELL_H - 2, fill=PAPER, stroke=INK,
               stroke_width=0.8)
            svg.label(cell, x + 8, cy + 11, text(f"{command.name} {command.key or ''}", fits), font_size=10)
        if hidden > 0:
            svg.label(group, x + 8, top + 18 + len(shown) * CELL_H + 11, f"+ {hidden} more", font_size=10,
                      fill=MUTED, class_="more")
    return top + tallest + 4
