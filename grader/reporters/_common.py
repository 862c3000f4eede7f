"""What every reporter needs from a result document: a tolerant read of it, evidence flattened into a few
known shapes, and the "what it takes to reach the next band" advice.

Reporters read only the result document (a dict loaded from JSON). It may come from an older or newer
grader, or be hand-edited, so nothing here trusts its shape: missing or odd fields get defaults instead
of a KeyError, and evidence of any shape renders as something.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from grader.text import more_text, printable, printable_line, printable_name

OUTCOMES = ("passed", "failed", "error", "skipped")

EVIDENCE_LABELS = {"requests": "HTTP requests", "redis": "Redis commands", "log": "App log", "log_tail": "App log"}
# Evidence keys end in their unit (latency_injected_s): shown as "Latency injected (s)".
UNIT_SUFFIXES = {"s": "s", "ms": "ms", "us": "µs", "kb": "KB", "mb": "MB", "pct": "%"}
# A string longer than this, or with a newline, is shown as a code block rather than inline.
LONG_STRING = 100


def clean_text(value: Any) -> str:
    """Any value as printable text (grader.text.printable): what a submission writes there cannot drive a terminal
    or break an XML file (one control byte would make a whole JUnit file unreadable to every CI viewer)."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return printable(text)


def evidence_label(key: str) -> str:
    """The label of an evidence key: a known name, or the key in words with its unit in parentheses
    ("latency_injected_s" -> "Latency injected (s)", "p95_ms" -> "P95 (ms)")."""
    if key in EVIDENCE_LABELS:
        return EVIDENCE_LABELS[key]
    words = [word for word in key.split("_") if word]
    unit = UNIT_SUFFIXES.get(words[-1].lower()) if len(words) > 1 else None
    if unit is not None:
        words = words[:-1]
    text = " ".join(words).capitalize() or key
    return f"{text} ({unit})" if unit else text


def fmt_num(value: Any) -> str:
    """87.5 -> "87.5", 80.0 -> "80", 12.3456 -> "12.35"; anything not a number as text ("" for None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else clean_text(value)
    rounded = round(float(value), 2)
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:g}"


def as_number(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


@dataclass
class EvidenceItem:
    """One evidence entry, reduced to a shape every format can render.

    kind: "text" (short inline value), "code" (long or multi-line text), "list" (items are strings),
    "pairs" (a small dict: items are "key: value" strings).
    """

    key: str
    label: str
    kind: str
    text: str = ""
    items: list[str] = field(default_factory=list)


def _one_line(value: Any) -> str:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return fmt_num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else json.dumps(value)
    try:
        return clean_text(json.dumps(value, ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        return clean_text(repr(value))


def evidence_items(evidence: Any) -> list[EvidenceItem]:
    """Flatten a check's free-form evidence dict; never raises, whatever its shape."""
    if evidence is None or evidence == {}:
        return []
    if not isinstance(evidence, dict):
        evidence = {"evidence": evidence}
    items: list[EvidenceItem] = []
    for raw_key, value in evidence.items():
        key = clean_text(raw_key)
        label = evidence_label(key)
        if isinstance(value, (list, tuple)):
            items.append(EvidenceItem(key, label, "list", items=[_one_line(v) for v in value]))
        elif isinstance(value, dict):
            items.append(EvidenceItem(key, label, "pairs", items=[f"{_one_line(k)}: {_one_line(v)}" for k, v in value.items()]))
        else:
            text = _one_line(value)
            kind = "code" if ("\n" in text or len(text) > LONG_STRING) else "text"
            items.append(EvidenceItem(key, label, kind, text=text))
    return items


def evidence_text(evidence: Any, *, max_items: int | None = None) -> str:
    """Evidence as plain indented text, for JUnit bodies and Gradescope outputs."""
    lines: list[str] = []
    for item in evidence_items(evidence):
        if item.kind == "text":
            lines.append(f"{item.label}: {item.text}")
        elif item.kind == "code":
            lines.append(f"{item.label}:")
            lines.extend("    " + line for line in item.text.splitlines())
        else:
            lines.append(f"{item.label}:")
            shown, hidden = limit(item.items, max_items)
            lines.extend("  - " + line for line in shown)
            if hidden:
                lines.append(f"  {more_text(hidden)}")
    return "\n".join(lines)


def limit(items: list[str], max_items: int | None) -> tuple[list[str], int]:
    """At most max_items entries and how many were left out."""
    if max_items is None or len(items) <= max_items:
        return items, 0
    return items[:max_items], len(items) - max_items


def head_tail(items: list[str], keep: int) -> list[str]:
    """A long list as its first and last few entries around a "… and n more" line: a trace's first requests
    show the setup, its last ones the moment it went wrong."""
    if len(items) <= keep + 1:
        return items
    head = keep // 2
    tail = keep - head
    return [*items[:head], more_text(len(items) - keep), *items[-tail:]]


@dataclass
class Link:
    title: str
    url: str  # "" when the document's URL is missing or not a web link (then the title is shown unlinked)


def safe_url(url: Any) -> str:
    """Only http(s) and relative links become links: a rubric is data, and `javascript:` is not a link."""
    text = clean_text(url).strip()
    if not text or any(c.isspace() for c in text):
        return ""
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*):", text)
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        return ""
    return text


@dataclass
class Check:
    id: str
    title: str
    category: str
    level: str
    outcome: str
    points: float
    max_points: float
    applicable: bool
    message: str
    hint: str
    evidence: list[EvidenceItem]
    raw_evidence: Any
    remediation: list[Link]
    figure: dict[str, Any] | None = None  # what the check saw over time (docs/figures.md), drawn by .figures

    @property
    def figure_caption(self) -> str:
        return " ".join(clean_text(self.figure.get("caption")).split()) if self.figure else ""

    @property
    def problem(self) -> bool:
        """Failed or error: the checks a student has to act on."""
        return self.outcome in ("failed", "error")

    @property
    def costs_points(self) -> bool:
        """A skip that counted in the maximum and earned nothing: to the student it is a failure."""
        return self.outcome == "skipped" and self.applicable and self.max_points > 0

    @property
    def skip_note(self) -> str:
        """How a skip weighs on the score, said the same way in every report."""
        if self.costs_points:
            return f"counts against the score (0/{fmt_num(self.max_points)} points)"
        return "" if self.applicable else "not counted"

    @property
    def points_text(self) -> str:
        if not self.applicable:
            return "n/a"
        return f"{fmt_num(self.points)}/{fmt_num(self.max_points)}"


@dataclass
class Category:
    name: str
    checks: list[Check]

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks if c.applicable)

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.checks if c.applicable)

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.checks if c.outcome == outcome)


def _links(value: Any) -> list[Link]:
    links: list[Link] = []
    for entry in value if isinstance(value, list) else []:
        if isinstance(entry, dict):
            url = safe_url(entry.get("url"))
            title = clean_text(entry.get("title") or entry.get("id") or url or "").strip()
            if title:
                links.append(Link(title, url))
        elif isinstance(entry, str) and entry.strip():
            links.append(Link(clean_text(entry).strip(), safe_url(entry)))
    return links


def read_check(raw: Any) -> Check:
    raw = raw if isinstance(raw, dict) else {}
    cid = clean_text(raw.get("id") or "unnamed").strip() or "unnamed"
    outcome = clean_text(raw.get("outcome")).lower()
    if outcome not in OUTCOMES:
        outcome = "error"  # an unknown outcome is not a pass: say so rather than hide it
    category = clean_text(raw.get("category") or cid.split(".", 1)[0]).strip() or "other"
    return Check(
        id=cid,
        title=clean_text(raw.get("title") or cid),
        category=category,
        level=clean_text(raw.get("level")),
        outcome=outcome,
        points=as_number(raw.get("points")),
        max_points=as_number(raw.get("max_points")),
        applicable=raw.get("applicable", True) is not False,
        message=clean_text(raw.get("message")),
        hint=clean_text(raw.get("hint")),
        evidence=evidence_items(raw.get("evidence")),
        raw_evidence=raw.get("evidence"),
        remediation=_links(raw.get("remediation")),
        figure=raw.get("figure") if isinstance(raw.get("figure"), dict) else None,
    )


@dataclass
class Report:
    """A result document read defensively: what the reporters render."""

    name: str
    path: str
    commit: str
    rubric: str
    rubric_title: str
    status: str  # "graded" or "error"
    error: str
    score: float | None
    max_score: float
    grade: str
    points: float | None
    max_points: float | None
    bands: dict[str, float]
    duration_s: float | None
    environment: dict[str, Any]
    checks: list[Check]
    advice: str

    @property
    def graded(self) -> bool:
        return self.status == "graded"

    @property
    def categories(self) -> list[Category]:
        """Checks grouped by category, in the order each category first appears."""
        groups: dict[str, list[Check]] = {}
        for check in self.checks:
            groups.setdefault(check.category, []).append(check)
        return [Category(name, checks) for name, checks in groups.items()]

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.problem]

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.checks if c.outcome == outcome)

    @property
    def score_text(self) -> str:
        return "-" if self.score is None else f"{fmt_num(self.score)}/{fmt_num(self.max_score)}"

    @property
    def environment_lines(self) -> list[str]:
        env = self.environment
        lines = []
        redis = env.get("redis") if isinstance(env.get("redis"), dict) else {}
        if redis:
            lines.append(f"Redis {clean_text(redis.get('version') or '?')} ({clean_text(redis.get('backend') or '?')})")
        for key, label in (("runtime", "runtime"), ("python", "Python"), ("grader_version", "redis-grader")):
            if env.get(key):
                lines.append(f"{label} {clean_text(env[key])}")
        return lines


def _optional_number(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)


def read_result(result: Any) -> Report:
    doc = result if isinstance(result, dict) else {}
    sub = doc.get("submission") if isinstance(doc.get("submission"), dict) else {}
    raw_checks = doc.get("checks") if isinstance(doc.get("checks"), list) else []
    checks = [read_check(c) for c in raw_checks]
    bands_raw = doc.get("grade_bands") if isinstance(doc.get("grade_bands"), dict) else {}
    bands = {clean_text(k): float(v) for k, v in bands_raw.items() if _optional_number(v) is not None}
    status = "graded" if doc.get("status") == "graded" else "error"
    error = " ".join(clean_text(doc.get("error")).split())  # one line, whatever the document holds
    if status == "error" and not error:
        error = "the grader did not finish grading" if doc else "the result document is empty or not a JSON object"
    report = Report(
        # One line each in every format: a folder named "x\ngrade S" must not print a line of its own.
        name=printable_name(str(sub.get("name") or "submission")),
        path=printable_line(str(sub.get("path") or "")),
        commit=printable_line(str(sub.get("commit") or "")),
        rubric=clean_text(doc.get("rubric")),
        rubric_title=clean_text(doc.get("rubric_title") or doc.get("rubric") or "redis-grader"),
        status=status,
        error=error,
        score=_optional_number(doc.get("score")),
        max_score=as_number(doc.get("max_score"), 100.0) or 100.0,
        grade=clean_text(doc.get("grade")),
        points=_optional_number(doc.get("points")),
        max_points=_optional_number(doc.get("max_points")),
        bands=bands,
        duration_s=_optional_number(doc.get("duration_s")),
        environment=doc.get("environment") if isinstance(doc.get("environment"), dict) else {},
        checks=checks,
        advice="",
    )
    report.advice = next_band_advice(report)
    return report


@dataclass
class Advice:
    band: str
    threshold: float
    fixes: list[tuple[Check, float]]  # (check, score gained on the result's scale)
    reachable: bool


_BLOCKED = re.compile(r"^needs (\S+), which |\((\S+) failed\)$")


def blocked_by(report: Report) -> dict[str, list[Check]]:
    """check id -> the skipped checks that wait on it, directly or through another skipped check (the runner's
    messages: "needs X, which failed", "the app did not start (app.starts failed)")."""
    waits_on: dict[str, str] = {}
    for c in report.checks:
        if c.outcome == "skipped" and c.applicable and (m := _BLOCKED.search(c.message)):
            waits_on[c.id] = m.group(1) or m.group(2)
    behind: dict[str, list[Check]] = {}
    for c in report.checks:
        root, seen = waits_on.get(c.id), {c.id}
        while root in waits_on and root not in seen:  # up the chain to the check that did not pass
            seen.add(root)
            root = waits_on[root]
        if root is not None:
            behind.setdefault(root, []).append(c)
    return behind


def plan_next_band(report: Report) -> Advice | None:
    """The fewest failed/error checks whose points lift the score into the next band up (largest first).

    Gains are on the score's scale (score = points / max_points * max_score), since that is what the
    bands apply to. None when the top band is reached, when there are no bands, or when not graded.
    """
    if not report.graded or report.score is None or not report.bands:
        return None
    # The band above the grade the document states (it was computed from the unrounded score), or,
    # for a grade the bands do not know, the band above the score.
    current = report.bands.get(report.grade, report.score)
    above = sorted((t, b) for b, t in report.bands.items() if t > current + 1e-9)
    if not above:
        return None
    threshold, band = above[0]
    raw_max = report.max_points if report.max_points else sum(c.max_points for c in report.checks if c.applicable)
    scale = report.max_score / raw_max if raw_max else 0.0
    # A fix is worth its own points and those of the checks skipped behind it (what it unlocks), at best.
    behind = blocked_by(report)
    candidates = sorted(
        ((c, sum(d.max_points - d.points for d in [c, *behind.get(c.id, [])]) * scale)
         for c in report.checks if c.problem and c.applicable),
        key=lambda pair: (-pair[1], pair[0].id),
    )
    fixes: list[tuple[Check, float]] = []
    score = report.score
    for check, gain in candidates:
        if gain <= 0:
            continue
        if score >= threshold - 1e-9:
            break
        fixes.append((check, gain))
        score += gain
    return Advice(band, threshold, fixes, score >= threshold - 1e-9)


def next_band_advice(report: Report) -> str:
    """One sentence, e.g. "fix ratelimit.lua (+12.5) to reach S"; "" when there is nothing to advise."""
    plan = plan_next_band(report)
    if plan is None:
        return ""
    behind = blocked_by(report)
    fixes = ", ".join(f"{c.id} (+{fmt_num(g)}" + (f", with the {len(behind[c.id])} checks it unlocks)"
                                                  if behind.get(c.id) else ")") for c, g in plan.fixes)
    if plan.reachable:
        return f"fix {fixes} to reach {plan.band}"
    best = report.score + sum(g for _, g in plan.fixes) if report.score is not None else 0.0
    if fixes:
        return f"fixing {fixes} gives {fmt_num(best)}, still short of {plan.band} ({fmt_num(plan.threshold)})"
    return f"{plan.band} needs {fmt_num(plan.threshold)}; no failed check is worth points"


def join_nonempty(parts: Iterable[str], sep: str = " · ") -> str:
    return sep.join(p for p in parts if p)
