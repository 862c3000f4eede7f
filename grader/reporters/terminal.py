"""The student's verdict in the terminal: grade first, then every check by category, and for each failure
what went wrong, a few lines of evidence, the hint and where the textbook teaches the fix."""

from __future__ import annotations

from typing import Any

import click

from grader.text import printable_line

from ._common import (
    Check,
    EvidenceItem,
    Report,
    fmt_num,
    head_tail,
    join_nonempty,
    more_text,
    read_result,
)
from .quiz import terminal_lines as quiz_terminal_lines

MARKS = {"passed": ("✓", "green"), "failed": ("✗", "red"), "error": ("!", "yellow"), "skipped": ("-", None)}
GRADE_COLOURS = {"S": "green", "A": "green", "B": "yellow", "C": "red"}
# A terminal shows a few evidence lines per failure; the full trace is in the JSON/HTML reports.
EVIDENCE_KEYS = 4
EVIDENCE_LINES = 4
LINE_WIDTH = 160


def render_terminal(result: dict[str, Any], color: bool) -> str:
    """The report as text; ANSI colour only when `color` (the CLI passes isatty, so pipes stay plain)."""
    report = read_result(result)

    def style(text: str, **kwargs: Any) -> str:
        return click.style(text, **kwargs) if color else text

    if not report.graded:
        return style("✗ ", fg="red", bold=True) + f"could not grade {report.name}: {report.error}\n"

    out: list[str] = []
    rubric = f"  (rubric {report.rubric})" if report.rubric else ""
    out.append(style(report.rubric_title, bold=True) + rubric)
    commit = f" @ {report.commit[:12]}" if report.commit else ""
    out.append(f"submission: {report.name}{commit}" + (f"  {report.path}" if report.path else ""))
    out.append(_grade_line(report, style))
    width = max((len(c.id) for c in report.checks), default=0)
    for category in report.categories:
        out.append("")
        total = f"{fmt_num(category.points)}/{fmt_num(category.max_points)}" if category.max_points else "not counted"
        out.append(style(category.name, bold=True) + f"  {total}")
        for check in category.checks:
            out.extend(_check_lines(check, style, width))
    out.extend(quiz_terminal_lines(result, style))
    out.append("")
    counts = join_nonempty(
        (f"{report.count(o)} {o}" if report.count(o) else "" for o in ("passed", "failed", "error", "skipped")), ", "
    )
    out.append(_grade_line(report, style) + (f"  ({counts})" if counts else ""))
    if report.advice:
        out.append(style("next: ", bold=True) + report.advice)
    elif report.grade and report.score is not None and not report.problems and report.bands:
        out.append("nothing left to fix")
    return "\n".join(out) + "\n"


def quiet_line(result: dict[str, Any]) -> str:
    """The one line `grader check -q` prints, with the score as the full report shows it:
    "alice: C (66/100)", or "alice: not graded (<why>)"."""
    report = read_result(result)
    if not report.graded:
        return f"{report.name}: not graded ({report.error})"
    return f"{report.name}: {report.grade or '?'} ({report.score_text})"


def _grade_line(report: Report, style: Any) -> str:
    grade = report.grade or "?"
    grade_text = style(f"grade {grade}", fg=GRADE_COLOURS.get(grade), bold=True)
    points = (
        f", {fmt_num(report.points)}/{fmt_num(report.max_points)} points"
        if report.points is not None and report.max_points is not None
        else ""
    )
    duration = f", {fmt_num(report.duration_s)} s" if report.duration_s is not None else ""
    return f"{grade_text}  score {report.score_text}{points}{duration}"


def _check_lines(check: Check, style: Any, width: int) -> list[str]:
    mark, colour = MARKS[check.outcome]
    mark_text = style(mark, fg=colour, bold=True) if colour else style(mark, dim=True)
    line = f"  {mark_text} {check.id:<{width}}  {check.points_text:>5}  {check.title}"
    if check.outcome == "skipped":
        reason = check.message or "skipped"
        note = f" ({check.skip_note})" if check.skip_note else ""
        return [line, style(f"      skipped{note}: {_clip(reason)}", dim=True)]
    if not check.problem:
        return [line]
    lines = [line]
    label = "error" if check.outcome == "error" else "seen"
    lines.append(f"      {style(label + ':', fg=colour)} {printable_line(check.message)}")
    for item in check.evidence[:EVIDENCE_KEYS]:
        lines.extend(_evidence_lines(item, style))
    if len(check.evidence) > EVIDENCE_KEYS:
        hidden = more_text(len(check.evidence) - EVIDENCE_KEYS, "evidence entries in the full report")
        lines.append(style(f"      {hidden}", dim=True))
    if check.hint:
        lines.append(f"      {style('hint:', fg='cyan')} {printable_line(check.hint)}")
    for link in check.remediation:
        lines.append(f"      {style('learn:', fg='cyan')} {link.title}" + (f"  {link.url}" if link.url else ""))
    return lines


def _evidence_lines(item: EvidenceItem, style: Any) -> list[str]:
    label = style(f"{item.label}:", dim=True)
    if item.kind == "text":
        return [f"      {label} {_clip(item.text)}"]
    entries = item.items if item.kind in ("list", "pairs") else item.text.splitlines()
    if item.kind == "code":
        # Long text (a log tail) matters most at its end.
        entries = entries[-EVIDENCE_LINES:]
    entries = head_tail(entries, EVIDENCE_LINES)
    return [f"      {label}"] + [f"        {_clip(e)}" for e in entries]


def _clip(text: str) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= LINE_WIDTH else text[: LINE_WIDTH - 1] + "…"
