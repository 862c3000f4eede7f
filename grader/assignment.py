"""The published assignment: every scored requirement in the student's words, generated from the rubric (what
is scored, for how many points, with which settings) and each check's own `requirement` (what it asks), so the
assignment cannot drift from what is graded. `grader assignment` prints it; README.md's "What your app must do"
block is the same text (tests/test_assignment.py keeps them equal)."""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from grader import rubric as rubrics
from grader.checking import LEVELS, Check
from grader.resources import templates_dir

README_START = "<!-- assignment:start -->"
README_END = "<!-- assignment:end -->"
LEVEL_TITLES = {"basic": "Basic", "advanced": "Advanced"}
_INLINE_CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Requirement:
    check_id: str
    level: str
    points: float
    text: str  # the requirement in the student's words, the rubric's settings filled in


@dataclass(frozen=True)
class Assignment:
    title: str
    levels: dict[str, list[Requirement]]  # "basic"/"advanced" -> requirements, in the rubric's order

    def points(self, level: str) -> float:
        return sum(r.points for r in self.levels.get(level, []))


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def requirement_text(check: Check, options: Mapping[str, Any]) -> str:
    """The check's requirement with `{setting}` placeholders filled from its rubric table (or its defaults);
    its title when it declares none."""
    text = check.requirement or check.title
    settings = check.settings_for(options)
    values = {f.name: _shown(getattr(settings, f.name)) for f in dataclasses.fields(settings) if f.name != "options"}
    values.update({k: _shown(v) for k, v in settings.options.items()})
    names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    return text.format_map({name: values.get(name, "{" + name + "}") for name in names}) if names else text


def build(rubric: rubrics.Rubric, checks: Mapping[str, Check]) -> Assignment:
    levels: dict[str, list[Requirement]] = {level: [] for level in LEVELS}
    for entry in rubric.entries:
        check = checks[entry.check_id]
        levels[check.level].append(Requirement(check.id, check.level, entry.points,
                                               requirement_text(check, entry.options)))
    return Assignment(rubric.title, levels)


def code_spans(text: str) -> Markup:
    """HTML-escaped text whose `inline code` (Markdown's backticks) becomes <code>."""
    return Markup(_INLINE_CODE.sub(r"<code>\1</code>", str(escape(text))))


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(templates_dir())), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html.j2"]), keep_trailing_newline=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["code_spans"] = code_spans
    return env


def _context(assignment: Assignment) -> dict[str, Any]:
    return {"assignment": assignment, "levels": [(LEVEL_TITLES[level], assignment.levels[level],
                                                  f"{assignment.points(level):g}") for level in LEVELS],
            "points": lambda p: f"{p:g}"}


def markdown(assignment: Assignment, *, heading: bool = True) -> str:
    """The assignment as Markdown; without the heading it is README.md's block."""
    return _environment().get_template("assignment.md.j2").render(**_context(assignment), heading=heading)


def html(assignment: Assignment) -> str:
    return _environment().get_template("assignment.html.j2").render(**_context(assignment))


def readme_block(readme: str) -> str | None:
    """What README.md holds between its assignment markers, or None when it has none."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        return None
    return readme[start + len(README_START):end].strip("\n") + "\n"


def with_readme_block(readme: str, block: str) -> str:
    """README.md with its assignment block replaced by `block`."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {README_START} ... {README_END} block")
    return readme[:start + len(README_START)] + "\n" + block.rstrip("\n") + "\n" + readme[end:]


def load(rubric_name: str = "redis-module") -> Assignment:
    from grader.registry import Registry

    known = Registry.load()
    return build(rubrics.load(rubric_name, known), known)


def write_readme(path: Path, assignment: Assignment) -> bool:
    """Regenerate README.md's block; True when it changed."""
    readme = path.read_text(encoding="utf-8")
    updated = with_readme_block(readme, markdown(assignment, heading=False))
    if updated != readme:
        path.write_text(updated, encoding="utf-8")
    return updated != readme
