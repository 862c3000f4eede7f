"""Rubrics: points per check, grade bands and remediation links, read from TOML.

A rubric names checks in the order they run. Each check's table holds its points, the official pages that
teach its fix (`links`), the textbook sections that teach it (linked when a textbook URL is configured: the
rubric's optional docs_url, which --docs-url overrides; otherwise named by title), an offline hint, who sees it
on Gradescope (`visibility`), and the check's settings: its `timeout` and any options of its own (e.g. the seed
modules of leaderboard.pipeline), checked against the check's settings class (grader/checking.py) when the
rubric is loaded with the checks.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.errors import UsageError
from grader.outcome import CheckOutcome, Outcome
from grader.resources import rubrics_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from grader.checking import Check

GRADE_ORDER = ("S", "A", "B", "C")
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")  # Gradescope's


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    path: str


@dataclass(frozen=True)
class RubricEntry:
    check_id: str
    points: float
    sections: tuple[str, ...]
    hint: str
    options: dict[str, Any]  # the rest of the table: the check's settings, as TOML gave them
    links: tuple[tuple[str, str], ...] = ()  # (title, url) of the official pages that teach the fix
    visibility: str = "visible"  # who sees the check on Gradescope


@dataclass
class Rubric:
    name: str
    title: str
    docs_url: str  # the textbook's base URL; "" when the course has none online
    bands: dict[str, float]  # grade -> lowest score (out of 100) that earns it
    sections: dict[str, Section]
    entries: list[RubricEntry]
    source: Path = field(default_factory=Path)
    visibility: str = "visible"  # who sees the whole result on Gradescope

    def entry(self, check_id: str) -> RubricEntry | None:
        return next((e for e in self.entries if e.check_id == check_id), None)

    def grade_for(self, score: float) -> str:
        for grade in GRADE_ORDER:
            if score >= self.bands[grade]:
                return grade
        return GRADE_ORDER[-1]

    def remediation(self, entry: RubricEntry, docs_url: str | None = None) -> list[dict[str, str]]:
        """The official pages first, then the textbook sections: linked when a textbook URL is configured,
        otherwise by title only (url "") rather than a link that leads nowhere."""
        links = [{"title": title, "url": url} for title, url in entry.links]
        base = (docs_url or self.docs_url).rstrip("/")
        for section_id in entry.sections:
            section = self.sections[section_id]
            url = f"{base}/{section.path}" if base else ""
            links.append({"id": section.id, "title": f"{section.id} {section.title}", "url": url})
        return links


@dataclass(frozen=True)
class Score:
    points: float
    max_points: float
    score: float  # out of 100
    grade: str


def points_for(entry: RubricEntry, outcome: CheckOutcome) -> tuple[float, float]:
    """(earned, counted max). Only a pass earns points; a not-applicable skip leaves the check out of the max."""
    if outcome.outcome == Outcome.SKIPPED and not outcome.applicable:
        return 0.0, 0.0
    return (entry.points if outcome.outcome == Outcome.PASSED else 0.0), entry.points


def score(rubric: Rubric, outcomes: Mapping[str, CheckOutcome]) -> Score:
    earned = maximum = 0.0
    for entry in rubric.entries:
        got, most = points_for(entry, outcomes[entry.check_id])
        earned += got
        maximum += most
    value = round(100.0 * earned / maximum, 2) if maximum else 0.0
    return Score(earned, maximum, value, rubric.grade_for(value))


def resolve(name_or_path: str) -> Path:
    """A rubric by name (rubrics/<name>.toml, shipped with the package) or by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UsageError(f"rubric file not found: {path}")
        return path
    shipped = rubrics_dir() / f"{name_or_path}.toml"
    if not shipped.is_file():
        known = ", ".join(sorted(p.stem for p in rubrics_dir().glob("*.toml")))
        raise UsageError(f"unknown rubric '{name_or_path}' (shipped: {known}; or pass a path to a .toml file)")
    return shipped


def load(name_or_path: str, known_checks: Mapping[str, Check] | Collection[str]) -> Rubric:
    """The rubric, with every check it names known. Given the checks themselves (a Registry), each check's
    settings are checked too: an option the check does not take, or of the wrong type, is a UsageError."""
    path = resolve(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"rubric {path}: not valid TOML: {exc}") from None
    try:
        return _parse(data, path, known_checks)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"rubric {path}: {exc}") from None


def _need(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise ValueError(f"{where} is missing '{key}'")
    if not isinstance(table[key], kind):
        raise TypeError(f"{where}.{key} has the wrong type ({type(table[key]).__name__})")
    return table[key]


def _number(table: dict[str, Any], key: str, where: str) -> float:
    """A finite number (TOML's nan and inf are floats, and true is an int to Python: none is a number here)."""
    value = _need(table, key, (int, float), where)
    if isinstance(value, bool) or not math.isfinite(value):
        raise TypeError(f"{where}.{key} must be a number, not {str(value).lower()}")
    return float(value)


def _bands(data: dict[str, Any]) -> dict[str, float]:
    table = _need(data, "grades", dict, "the rubric")
    bands = {g: _number(table, g, "[grades]") for g in GRADE_ORDER}
    if not 100 >= bands["S"] > bands["A"] > bands["B"] > bands["C"] >= 0:
        raise ValueError("[grades] must be strictly decreasing S > A > B > C, within 0-100 (scores are out of 100)")
    return bands


def _entry(check_id: str, table: dict[str, Any], sections: Mapping[str, Section],
           known_checks: Mapping[str, Check] | Collection[str]) -> RubricEntry:
    where = f'[checks."{check_id}"]'
    if check_id not in known_checks:
        raise ValueError(f"{where} names a check that does not exist")
    points = _number(table, "points", where)
    if points < 0:
        raise ValueError(f"{where}.points must not be negative")
    section_ids = tuple(table.get("sections", ()))
    for section_id in section_ids:
        if section_id not in sections:
            raise ValueError(f"{where}.sections names '{section_id}', which [sections] does not define")
    options = {k: v for k, v in table.items() if k not in ("points", "sections", "hint", "links", "visibility")}
    if isinstance(known_checks, Mapping):
        known_checks[check_id].settings_for(options)  # raises ValueError naming the option
    links = tuple(_link(link, f"{where}.links") for link in table.get("links", ()))
    return RubricEntry(check_id, points, section_ids, str(table.get("hint", "")), options, links,
                       _visibility(table, where))


def _parse(data: dict[str, Any], path: Path, known_checks: Mapping[str, Check] | Collection[str]) -> Rubric:
    bands = _bands(data)
    sections = {}
    for section_id, table in _need(data, "sections", dict, "the rubric").items():
        where = f'[sections."{section_id}"]'
        sections[section_id] = Section(section_id, _need(table, "title", str, where), _need(table, "path", str, where))
    entries = [_entry(check_id, table, sections, known_checks)
               for check_id, table in _need(data, "checks", dict, "the rubric").items()]
    if not entries:
        raise ValueError("[checks] is empty")
    if not any(entry.points for entry in entries):
        raise ValueError("the points of [checks] add up to 0: no score could be earned")

    return Rubric(
        name=_need(data, "name", str, "the rubric"),
        title=str(data.get("title", data["name"])),
        docs_url=str(data.get("docs_url", "")),
        bands=bands,
        sections=sections,
        entries=entries,
        source=path,
        visibility=_visibility(data, "the rubric"),
    )


def _link(value: Any, where: str) -> tuple[str, str]:
    """One `{title = ..., url = ...}` of a check's links: an http(s) page a student can open."""
    if not isinstance(value, dict) or not isinstance(value.get("title"), str) or not isinstance(value.get("url"), str):
        raise TypeError(f"{where} entries must be tables with a title and a url")
    if not value["url"].startswith(("https://", "http://")):
        raise ValueError(f"{where}: {value['url']!r} is not an http(s) URL")
    return value["title"], value["url"]


def _visibility(table: dict[str, Any], where: str) -> str:
    value = table.get("visibility", "visible")
    if value not in VISIBILITIES:
        raise ValueError(f"{where}.visibility must be one of {', '.join(VISIBILITIES)}")
    return value
