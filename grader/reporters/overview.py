"""The class overview, index.html: every submission's row, the grade distribution, and the checks the class
finds hardest. Like every reporter it reads result documents and nothing else (the batch collects them)."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from ..rubric import GRADE_ORDER
from ..text import printable_name, valid_unicode
from ._common import Report, read_result
from ._templates import environment as template_environment
from .figures import classwide
from .gradebook import write_gradebook

GRADEBOOK = "gradebook.csv"
INDEX = "index.html"
REPORT_HTML = "report.html"  # each submission's own report, linked from its row
NOT_GRADED = "not graded"


@dataclass
class Row:
    folder: str
    report: Report
    href: str  # relative link to its report.html ("" when there is none)


@dataclass
class CheckStats:
    id: str
    title: str
    category: str
    order: int  # first-seen (rubric) position, the tie-breaker
    counts: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0, "error": 0, "skipped": 0})
    not_counted: int = 0  # skipped as not applicable (--only, no such endpoint): left out of the rate

    @property
    def ran(self) -> int:
        """Submissions where the check ran and decided. Skips (the app did not start, a check it needs
        failed) are left out: they say nothing about this check, and would rank every check alike."""
        return self.counts["passed"] + self.counts["failed"] + self.counts["error"]

    @property
    def rate(self) -> float | None:
        return self.counts["passed"] / self.ran if self.ran else None

    @property
    def percent(self) -> str:
        return "-" if self.rate is None else f"{round(100 * self.rate)}%"


@dataclass
class ClassPicture:
    """One of the class's own pictures: inline SVG (written by ElementTree, every string in it escaped)."""

    id: str
    svg: Markup
    caption: str
    failed: list[classwide.Failure] = field(default_factory=list)  # the stampede picture's submissions, linked


@dataclass
class Overview:
    title: str
    rows: list[Row]
    distribution: list[tuple[str, int]]  # (grade or "not graded", count), every band even when 0
    checks: list[CheckStats]  # hardest first: what the class struggles with
    mean: float | None
    median: float | None
    generated: str
    pictures: list[ClassPicture] = field(default_factory=list)

    @property
    def graded(self) -> int:
        return sum(1 for r in self.rows if r.report.graded)

    def share(self, count: int) -> int:
        """A count as a whole percentage of all submissions (for the distribution bars)."""
        return round(100 * count / len(self.rows)) if self.rows else 0


def build_overview(results: list[tuple[str, dict[str, Any]]], out: Path | None = None) -> Overview:
    """The overview of (folder name, result document) pairs; with `out`, a row links its report only when
    `out/<folder>/report.html` exists."""
    rows: list[Row] = []
    stats: dict[str, CheckStats] = {}
    grades: dict[str, int] = {g: 0 for g in GRADE_ORDER}
    titles: set[str] = set()
    for folder, doc in results:
        report = read_result(doc)
        # A folder named in bytes that are not UTF-8 is shown with them escaped, and linked to by those bytes;
        # shown on one line, with the control characters a folder's name may hold shown as their codes.
        report.name = printable_name(valid_unicode(folder))
        has_report = out is None or (out / folder / REPORT_HTML).is_file()
        href = f"{quote(folder, errors='surrogateescape')}/{REPORT_HTML}" if has_report else ""
        rows.append(Row(report.name, report, href))
        if not report.graded:
            grades[NOT_GRADED] = grades.get(NOT_GRADED, 0) + 1
            continue
        titles.add(report.rubric_title)
        grades[report.grade or "?"] = grades.get(report.grade or "?", 0) + 1
        _count_checks(report, stats)
    grades.setdefault(NOT_GRADED, 0)
    scores = [r.report.score for r in rows if r.report.graded and r.report.score is not None]
    ordered = sorted(stats.values(), key=lambda s: (s.rate is None, s.rate if s.rate is not None else 0.0, s.order))
    return Overview(
        title=" / ".join(sorted(titles)) or "redis-grader",
        rows=rows,
        distribution=list(grades.items()),
        checks=ordered,
        mean=round(statistics.fmean(scores), 2) if scores else None,
        median=round(statistics.median(scores), 2) if scores else None,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        pictures=class_pictures(rows),
    )


def class_pictures(rows: list[Row]) -> list[ClassPicture]:
    """The served counts of the race figures, and the submissions whose cache.stampede failed."""
    graded = [row for row in rows if row.report.graded]
    pictures = []
    races = [next((c.figure for c in row.report.checks if c.figure and c.figure.get("kind") == "race"), None)
             for row in graded]
    dist = classwide.served_distribution([figure for figure in races if figure is not None])
    if dist is not None:
        caption = (f"How many requests each limiter served out of the concurrent burst, over {dist.submissions} "
                   f"submissions: {dist.exact} served exactly the expected count; more means a race between reading "
                   "and writing the counter.")
        pictures.append(ClassPicture("served", Markup(classwide.render_served(dist)), caption))
    share = _stampede_share(graded)
    if share.ran:
        caption = (f"{share.counts['failed']} of the {share.ran} submissions where {classwide.STAMPEDE} ran let the "
                   "database be read many times when the cached list expired under load.")
        pictures.append(ClassPicture("stampede", Markup(classwide.render_stampede(share)), caption, share.failed))
    return pictures


def _stampede_share(rows: list[Row]) -> classwide.StampedeShare:
    share = classwide.StampedeShare()
    for row in rows:
        check = next((c for c in row.report.checks if c.id == classwide.STAMPEDE), None)
        if check is None or check.outcome == "skipped":
            continue
        share.counts[check.outcome] += 1
        if share.max_writes is None and check.figure is not None:
            share.max_writes = classwide.opt_int(check.figure.get("max_writes"))
        if check.outcome == "failed":
            href = f"{row.href}#check-{quote(check.id)}" if row.href else ""
            share.failed.append(classwide.Failure(row.folder, href, classwide.worst_writes(check.figure)))
    return share


def _count_checks(report: Report, stats: dict[str, CheckStats]) -> None:
    for check in report.checks:
        entry = stats.setdefault(check.id, CheckStats(check.id, check.title, check.category, len(stats)))
        if check.outcome == "skipped" and not check.applicable:
            entry.not_counted += 1
        else:
            entry.counts[check.outcome] += 1


def render_index(overview: Overview) -> str:
    return template_environment().get_template("batch.html.j2").render(batch=overview)


def write_overview(out: Path, results: list[tuple[str, dict[str, Any]]]) -> tuple[Path, Path]:
    """out/gradebook.csv and out/index.html over `results` (tmp + rename: a reader never sees half a file)."""
    gradebook, index = out / GRADEBOOK, out / INDEX
    with _atomic(gradebook) as tmp:
        write_gradebook([doc for _, doc in results], tmp)
    with _atomic(index) as tmp:
        tmp.write_text(render_index(build_overview(results, out)), encoding="utf-8")
    return gradebook, index


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[Path]:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
