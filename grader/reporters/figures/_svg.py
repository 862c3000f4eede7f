"""What every picture shares: an SVG tree built with ElementTree (every text and attribute value is escaped when
the tree is written, so a student's key or reply is always text, never markup), a tolerant read of the figure's
members, a time axis with round ticks, and the marks that tell statuses apart by shape and label, not by hue.

The pictures print: a white background, dark strokes, and fills that stay apart in grey (solid, hatched,
outlined, dashed), each with its text label beside it.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._common import clean_text

WIDTH = 760  # the drawing's own units; the page scales it down to its column
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
FONT_SIZE = 11
CHAR_W = 6.2  # a character's width at FONT_SIZE, near enough to keep labels from overlapping (no text metrics here)
INK = "#1f2328"
MUTED = "#59636e"
GRID = "#d0d7de"
PAPER = "#ffffff"
OK_FILL = "#2f6f44"  # a dark green: reads as dark grey on paper, the same as any solid fill
SHADE = "#eaeef2"
# The document's caps (docs/figures.md); a hand-edited document may hold more, and a picture stays small anyway.
MAX_REQUESTS = 100
MAX_COMMANDS = 200
MAX_EVENTS = 50
MAX_MAGNITUDE = 1e12  # larger is no time or count a grading saw: the document was edited, and it is left out
_IDENT = re.compile(r"[^A-Za-z0-9_-]+")
# A lone surrogate (a JSON "\ud800" escape) cannot be written as UTF-8: the page would fail to save.
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(value: Any) -> str:
    """Text fit for XML: no control characters, ANSI codes or lone surrogates."""
    return _SURROGATE.sub("\ufffd", clean_text(value))


# ---- reading the figure: any member may be missing or of the wrong type -------------------------------------

def opt_num(value: Any) -> float | None:
    """A number of a sane size, or None (bools, strings, NaN, infinities and 10**400 are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_MAGNITUDE else None


def num(value: Any, default: float = 0.0) -> float:
    number = opt_num(value)
    return default if number is None else number


def opt_int(value: Any) -> int | None:
    number = opt_num(value)
    return None if number is None else int(number)


def text(value: Any, limit: int = 60) -> str:
    """One line of printable text, at most `limit` characters (a cut ends with "…")."""
    line = " ".join(printable(value).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def entries(value: Any, cap: int) -> list[dict[str, Any]]:
    """The first `cap` objects of a list member; anything that is not an object is left out."""
    return [item for item in value if isinstance(item, dict)][:cap] if isinstance(value, list) else []


def numbers(value: Any, cap: int) -> list[float]:
    return [num(v) for v in value if opt_num(v) is not None][:cap] if isinstance(value, list) else []


def fmt(value: float) -> str:
    """A coordinate or a measured value: at most one decimal, no trailing ".0"."""
    rounded = round(float(value), 1)
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:.1f}"


def ident(value: Any) -> str:
    """A string safe inside an XML id (pattern ids must differ between the pictures of one page)."""
    return _IDENT.sub("-", clean_text(value)).strip("-") or "figure"


def text_width(label: str) -> float:
    return len(label) * CHAR_W


# ---- the tree ---------------------------------------------------------------------------------------------

def _attrs(values: dict[str, Any]) -> dict[str, str]:
    """Keyword names to SVG attribute names (data_status -> data-status, class_ -> class); None is left out."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        key = name.rstrip("_").replace("_", "-")
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            out[key] = fmt(float(value))
        else:
            out[key] = printable(value)
    return out


def el(parent: ET.Element, tag: str, content: str | None = None, **attributes: Any) -> ET.Element:
    node = ET.SubElement(parent, tag, _attrs(attributes))
    if content is not None:
        node.text = printable(content)
    return node


def tooltip(parent: ET.Element, content: str) -> None:
    """A <title> child: the full text of a mark (its label in the picture may be cut or left out)."""
    el(parent, "title", content)


class Svg:
    """One picture: <svg role="img"> with its <title> and <desc>, a white page, and the shared fill patterns.

    No xmlns: the picture lives inside an HTML page, whose parser puts <svg> in the SVG namespace itself (and
    the page keeps its promise of no "http" anywhere in it)."""

    def __init__(self, kind: str, title: str, desc: str, figure_id: str, width: float = WIDTH) -> None:
        self.width = width
        self.prefix = f"fig-{ident(figure_id)}"
        self.root = ET.Element("svg", _attrs({
            "role": "img", "class_": f"figure figure-{kind}", "data_kind": kind,
            "aria_labelledby": f"{self.prefix}-title {self.prefix}-desc",
            "font_family": FONT, "font_size": FONT_SIZE, "fill": INK,
        }))
        el(self.root, "title", title, id=f"{self.prefix}-title")
        el(self.root, "desc", desc, id=f"{self.prefix}-desc")
        defs = el(self.root, "defs")
        hatch = el(defs, "pattern", id=self.pattern_id("hatch"), width=6, height=6,
                   patternUnits="userSpaceOnUse", patternTransform="rotate(45)")
        el(hatch, "rect", width=6, height=6, fill=PAPER)
        el(hatch, "line", x1=0, y1=0, x2=0, y2=6, stroke=INK, stroke_width=2)
        dots = el(defs, "pattern", id=self.pattern_id("dots"), width=4, height=4, patternUnits="userSpaceOnUse")
        el(dots, "rect", width=4, height=4, fill=PAPER)
        el(dots, "circle", cx=2, cy=2, r=0.9, fill=INK)
        self.page = el(self.root, "rect", class_="page", x=0, y=0, width=width, fill=PAPER)
        self.backdrop = el(self.root, "g", class_="backdrop")  # grid lines and shading, under every mark

    def pattern_id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def fill(self, name: str) -> str:
        return f"url(#{self.pattern_id(name)})"

    def group(self, class_: str, parent: ET.Element | None = None, **attributes: Any) -> ET.Element:
        return el(self.root if parent is None else parent, "g", class_=class_, **attributes)

    def label(self, parent: ET.Element, x: float, y: float, content: str, **attributes: Any) -> ET.Element:
        return el(parent, "text", content, x=x, y=y, **attributes)

    def finish(self, height: float) -> str:
        height = math.ceil(height)
        self.root.set("viewBox", f"0 0 {fmt(self.width)} {height}")
        self.root.set("width", fmt(self.width))
        self.root.set("height", str(height))
        self.page.set("height", str(height))
        return ET.tostring(self.root, encoding="unicode")


def heading(svg: Svg, y: float, lines: Iterable[str], x: float = 8) -> float:
    """The picture's own headline (the numbers that matter); returns the y below it."""
    for index, line in enumerate(line for line in lines if line):
        y += 16
        svg.label(svg.root, x, y, line, class_="headline", font_weight=600 if index == 0 else None)
    return y + 8


def truncation_note(svg: Svg, y: float, truncated: bool) -> float:
    if not truncated:
        return y
    svg.label(svg.root, 8, y + 14, "Lists cut to the report's caps; the caption counts everything.",
              class_="truncated", fill=MUTED, font_style="italic")
    return y + 22


# ---- time axis ---------------------------------------------------------------------------------------------

def nice_step(span: float, target: int = 6) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `span`."""
    if span <= 0:
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


@dataclass
class Axis:
    """A time axis from 0 to `end` (in `unit`: "ms" or "s") drawn between x0 and x1."""

    end: float
    x0: float
    x1: float
    unit: str

    @classmethod
    def over(cls, values: Iterable[float], x0: float, x1: float, unit: str) -> Axis:
        top = max((v for v in values if v > 0), default=0.0)
        step = nice_step(top or 1.0)
        return cls(max(step, math.ceil(top / step) * step), x0, x1, unit)

    def x(self, value: float) -> float:
        return self.x0 + (self.x1 - self.x0) * min(max(value, 0.0), self.end) / self.end

    def ticks(self) -> list[float]:
        step = nice_step(self.end)
        return [i * step for i in range(round(self.end / step) + 1)]

    def tick_label(self, value: float) -> str:
        if self.unit == "ms" and self.end >= 2000:
            return f"{value / 1000:g} s"
        return f"{value:g} {self.unit}"

    def draw(self, svg: Svg, top: float, baseline: float) -> float:
        """Grid lines from `top` down to the axis at `baseline`, tick labels below it; returns the y below."""
        axis = svg.group("axis", data_unit=self.unit, data_end=self.end)
        for tick in self.ticks():
            x = self.x(tick)
            el(svg.backdrop, "line", x1=x, y1=top, x2=x, y2=baseline, stroke=GRID, stroke_width=1)
            el(axis, "line", x1=x, y1=baseline, x2=x, y2=baseline + 4, stroke=INK)
            svg.label(axis, x, baseline + 16, self.tick_label(tick), text_anchor="middle", class_="tick")
        el(axis, "line", x1=self.x0, y1=baseline, x2=self.x1, y2=baseline, stroke=INK, stroke_width=1)
        return baseline + 24


def pack(spans: list[tuple[float, float]], rows: int, gap: float = 4.0) -> list[int | None]:
    """Label rows for spans (start, end) in x order: the first row where the label does not overlap the one
    before it, or None when all `rows` are taken there (the mark keeps its tooltip)."""
    ends = [-math.inf] * rows
    placed: list[int | None] = []
    for start, end in spans:
        row = next((r for r in range(rows) if ends[r] + gap <= start), None)
        if row is not None:
            ends[row] = end
        placed.append(row)
    return placed


# ---- statuses: told apart by fill pattern and a label, not by colour alone ------------------------------------

@dataclass
class StatusLook:
    name: str  # "served", "refused", "other", "no answer"
    label: str  # what is printed beside the mark: "200", "429", "500", "—"
    fill: str
    stroke: str
    dash: str | None
    stroke_width: float


def status_look(svg: Svg, status: int | None) -> StatusLook:
    if status is None:
        return StatusLook("no answer", "—", PAPER, INK, "3 2", 1.2)
    if 200 <= status < 300:
        return StatusLook("served", str(status), OK_FILL, INK, None, 1.0)
    if status == 429:
        return StatusLook("refused", "429", svg.fill("hatch"), INK, None, 1.0)
    return StatusLook("other", str(status), PAPER, INK, None, 2.0)


def status_text(status: int | None) -> str:
    return "no answer" if status is None else str(status)


def swatch(svg: Svg, parent: ET.Element, x: float, y: float, look: StatusLook, caption: str) -> float:
    """One legend entry (a small bar in the status's look, then its words); returns the x after it."""
    el(parent, "rect", x=x, y=y - 8, width=18, height=9, fill=look.fill, stroke=look.stroke,
       stroke_width=look.stroke_width, stroke_dasharray=look.dash)
    svg.label(parent, x + 22, y, caption)
    return x + 22 + text_width(caption) + 14


def legend(svg: Svg, y: float, statuses: Iterable[int | None], x: float = 8) -> float:
    """The legend of the statuses present; returns the y below it."""
    group = svg.group("legend")
    seen: dict[str, tuple[StatusLook, str]] = {}
    for status in statuses:
        look = status_look(svg, status)
        words = {"served": "served", "refused": "refused (429)", "no answer": "no answer (—)"}.get(look.name, "other")
        caption = f"{look.label} {words}" if look.name == "served" else words
        if look.name == "other":
            caption = f"{look.label} error"
        seen.setdefault(caption, (look, caption))
    for look, caption in seen.values():
        x = swatch(svg, group, x, y + 12, look, caption)
    return y + 20 if seen else y


# ---- Redis commands -------------------------------------------------------------------------------------------

@dataclass
class Command:
    at_ms: float
    end_ms: float | None
    name: str
    key: str | None
    reply: str

    def describe(self) -> str:
        where = f" {self.key}" if self.key else ""
        took = f"–{fmt(self.end_ms)}" if self.end_ms is not None else ""
        return f"{self.name}{where} → {self.reply or '(no reply)'} at {fmt(self.at_ms)}{took} ms"


def read_commands(value: Any, cap: int = MAX_COMMANDS) -> list[Command]:
    commands = []
    for item in entries(value, cap):
        at = num(item.get("at_ms"))
        end = opt_num(item.get("end_ms"))
        key = item.get("key")
        commands.append(Command(
            at_ms=at,
            end_ms=None if end is None else max(at, end),
            name=text(item.get("name"), 20).upper() or "?",
            key=None if key is None else text(key, 60),
            reply=text(item.get("reply"), 40),
        ))
    return commands


def marker(parent: ET.Element, shape: str, x: float, y: float, *, filled: bool = True, size: float = 4.0) -> None:
    """A point mark: "diamond", "circle", "square" or "cross", filled (dark) or open (white, dark outline)."""
    fill = INK if filled else PAPER
    if shape == "diamond":
        points = f"{fmt(x)},{fmt(y - size - 1)} {fmt(x + size + 1)},{fmt(y)} {fmt(x)},{fmt(y + size + 1)} {fmt(x - size - 1)},{fmt(y)}"
        el(parent, "polygon", points=points, fill=fill, stroke=INK, stroke_width=1.2)
    elif shape == "square":
        el(parent, "rect", x=x - size, y=y - size, width=2 * size, height=2 * size, fill=fill, stroke=INK,
           stroke_width=1.2)
    elif shape == "cross":
        for dx in (-size, size):
            el(parent, "line", x1=x - dx, y1=y - size, x2=x + dx, y2=y + size, stroke=INK, stroke_width=2)
    else:
        el(parent, "circle", cx=x, cy=y, r=size, fill=fill, stroke=INK, stroke_width=1.5)
