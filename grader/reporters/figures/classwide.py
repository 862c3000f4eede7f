"""The class's own pictures, for the batch overview: how many requests each submission's limiter served in the
race (`race` figures, against the count expected), and which submissions' `cache.stampede` failed. Read from the
result documents alone, like every report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._svg import INK, MUTED, OK_FILL, PAPER, WIDTH, StatusLook, Svg, el, heading, opt_int, swatch, text, tooltip

STAMPEDE = "cache.stampede"
LEFT = 48
CHART_H = 140
MAX_NAMES = 40  # failed submissions named in the stampede picture (the page's list below it names them all)


@dataclass
class ServedDistribution:
    """served count -> submissions; the expected counts (normally one: the limit of 10)."""

    served: Counter[int] = field(default_factory=Counter)
    expected: Counter[int] = field(default_factory=Counter)
    exact: int = 0  # submissions that served exactly what they were expected to

    @property
    def submissions(self) -> int:
        return sum(self.served.values())


@dataclass
class Failure:
    folder: str
    href: str  # its report's section on the check ("" when it has no report)
    worst_writes: int | None  # the most database loads at one expiry, from its figure


@dataclass
class StampedeShare:
    counts: Counter[str] = field(default_factory=Counter)  # outcome -> submissions where the check ran
    failed: list[Failure] = field(default_factory=list)
    max_writes: int | None = None

    @property
    def ran(self) -> int:
        return self.counts["passed"] + self.counts["failed"] + self.counts["error"]

    def percent(self, outcome: str) -> int:
        return round(100 * self.counts[outcome] / self.ran) if self.ran else 0


def served_distribution(figures: list[dict[str, Any]]) -> ServedDistribution | None:
    """From each submission's `race` figure (at most one each); None when no submission has one."""
    dist = ServedDistribution()
    for figure in figures:
        served = opt_int(figure.get("served"))
        if served is None:
            requests = figure.get("requests") if isinstance(figure.get("requests"), list) else []
            served = sum(1 for r in requests if isinstance(r, dict) and isinstance(r.get("status"), int)
                         and 200 <= r["status"] < 300)
        expected = opt_int(figure.get("expected_served"))
        dist.served[max(0, served)] += 1
        if expected is not None:
            dist.expected[expected] += 1
            dist.exact += served == expected
    return dist if dist.submissions else None


def worst_writes(figure: dict[str, Any] | None) -> int | None:
    if not isinstance(figure, dict) or figure.get("kind") != "stampede" or not isinstance(figure.get("expiries"), list):
        return None
    writes = [opt_int(e.get("writes")) for e in figure["expiries"] if isinstance(e, dict)]
    return max((w for w in writes if w is not None), default=None)


def render_served(dist: ServedDistribution) -> str:
    """A bar per served count (every count between the lowest and the highest seen, so gaps show), the
    expected count's bar solid and labelled, the others hatched."""
    values = [*dist.served, *dist.expected]
    low, high = min(values), max(values)
    counts = list(range(low, high + 1)) if high - low <= 60 else sorted(set(values))
    expected = set(dist.expected)
    headline = f"{dist.exact} of {dist.submissions} submissions served exactly the expected count"
    if dist.expected:
        headline += " (" + ", ".join(str(e) for e in sorted(expected)) + ")"
    svg = Svg("served", "Requests served out of the concurrent burst, per submission", headline, "class-served")
    svg.root.set("data-submissions", str(dist.submissions))
    y = heading(svg, 0, [headline, "How many of the concurrent requests each limiter served (ratelimit.atomic_under_load)."])
    legend = svg.group("legend")
    x = swatch(svg, legend, 8, y + 12, StatusLook("expected", "", OK_FILL, INK, None, 1.0), "the expected count")
    swatch(svg, legend, x, y + 12, StatusLook("other", "", svg.fill("hatch"), INK, None, 1.0), "any other count")
    top = y + 36
    base = top + CHART_H
    slot = (WIDTH - LEFT - 16) / len(counts)
    bar_w = max(2.0, min(28.0, slot - 2))
    tallest = max(dist.served.values())
    el(svg.root, "line", x1=LEFT, y1=base, x2=WIDTH - 8, y2=base, stroke=INK)
    svg.label(svg.root, LEFT - 6, top + 8, "subs.", text_anchor="end", fill=MUTED, font_size=9)
    every = max(1, round(len(counts) / 20))  # count labels under the axis: at most about twenty
    for i, served in enumerate(counts):
        n = dist.served.get(served, 0)
        is_expected = served in expected
        x = LEFT + 8 + i * slot
        group = svg.group("served-bar", data_served=served, data_count=n, data_expected=is_expected)
        tooltip(group, f"{n} submission{'s' if n != 1 else ''} served {served}" + (" (expected)" if is_expected else ""))
        height = CHART_H * n / tallest
        if n:
            el(group, "rect", x=x, y=base - height, width=bar_w, height=height,
               fill=OK_FILL if is_expected else svg.fill("hatch"), stroke=INK)
            svg.label(group, x + bar_w / 2, base - height - 3, str(n), text_anchor="middle", font_size=10)
        if is_expected or i % every == 0 or n:
            svg.label(group, x + bar_w / 2, base + 13, str(served), text_anchor="middle", font_size=9)
        if is_expected:
            svg.label(group, x + bar_w / 2, base + 26, "▲ expected", text_anchor="middle", font_size=9,
                      font_weight=700, class_="expected-mark")
    svg.label(svg.root, WIDTH / 2, base + 42, "requests served out of the burst", text_anchor="middle", fill=MUTED)
    return svg.finish(base + 52)


def render_stampede(share: StampedeShare) -> str:
    """One bar split into the submissions where the check passed, failed or could not decide, then the failed
    ones by name with their most database loads at one expiry."""
    headline = f"{share.counts['failed']} of {share.ran} submissions ({share.percent('failed')} %) failed {STAMPEDE}"
    svg = Svg("stampede_share", f"Submissions whose {STAMPEDE} failed", headline, "class-stampede")
    svg.root.set("data-failed", str(share.counts["failed"]))
    svg.root.set("data-ran", str(share.ran))
    y = heading(svg, 0, [headline])
    looks = {"failed": StatusLook("failed", "", svg.fill("hatch"), INK, None, 1.0),
             "passed": StatusLook("passed", "", OK_FILL, INK, None, 1.0),
             "error": StatusLook("error", "", PAPER, INK, "3 2", 1.5)}
    x0, width = 8.0, WIDTH - 16
    for outcome, look in looks.items():
        n = share.counts[outcome]
        if not n:
            continue
        w = width * n / share.ran
        group = svg.group("share", data_outcome=outcome, data_count=n)
        tooltip(group, f"{outcome}: {n} ({share.percent(outcome)} %)")
        el(group, "rect", x=x0, y=y + 4, width=w, height=22, fill=look.fill, stroke=look.stroke,
           stroke_width=look.stroke_width, stroke_dasharray=look.dash)
        caption = f"{outcome} {n} ({share.percent(outcome)} %)"
        svg.label(group, x0 + 4, y + 42, caption, font_weight=600)
        x0 += w
    y += 56
    if share.failed:
        tolerated = f" (tolerated: {share.max_writes})" if share.max_writes is not None else ""
        svg.label(svg.root, 8, y + 6, f"Failed, with the most database loads at one expiry{tolerated}:", fill=MUTED)
        y += 10
        for failure in share.failed[:MAX_NAMES]:
            y += 15
            row = svg.group("failed-submission", data_submission=failure.folder, data_worst_writes=failure.worst_writes)
            loads = "no figure" if failure.worst_writes is None else f"{failure.worst_writes} loads"
            svg.label(row, 16, y, f"{text(failure.folder, 60)} — {loads}")
        if len(share.failed) > MAX_NAMES:
            y += 15
            svg.label(svg.root, 16, y, f"… and {len(share.failed) - MAX_NAMES} more", fill=MUTED)
    return svg.finish(y + 12)


__all__ = ["Failure", "ServedDistribution", "StampedeShare", "render_served", "render_stampede",
           "served_distribution", "worst_writes"]
