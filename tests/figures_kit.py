"""Result documents with a figure of every kind (the hand-made figures of tests/results/figures/, written to
docs/figures.md), and a reader of the pictures in a page: what the figure tests assert on."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from conftest import ROOT, require

RESULTS = Path(__file__).parent / "results"
FIGURES = RESULTS / "figures"
# kind -> the check that draws it, and its outcome in the sample document
FIGURE_CHECKS = {
    "race": ("ratelimit.atomic_under_load", "failed"),
    "countdown": ("cache.ttl", "passed"),
    "stampede": ("cache.stampede", "failed"),
    "round_trips": ("leaderboard.pipeline", "failed"),
    "event_loop": ("async.event_loop", "failed"),
}


def figure(kind: str) -> dict[str, Any]:
    return json.loads((FIGURES / f"{kind}.json").read_text(encoding="utf-8"))


def with_figures(doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sample graded document (or `doc`) with each kind's figure on its check (added when missing)."""
    doc = copy.deepcopy(doc) if doc is not None else json.loads((RESULTS / "graded.json").read_text(encoding="utf-8"))
    for kind, (check_id, outcome) in FIGURE_CHECKS.items():
        record = next((c for c in doc["checks"] if c["id"] == check_id), None)
        if record is None:
            record = {"id": check_id, "title": f"the {kind} check", "category": check_id.split(".")[0],
                      "level": "advanced", "points": 0, "max_points": 4, "applicable": True, "evidence": {},
                      "hint": "", "remediation": []}
            doc["checks"].append(record)
        record.update(outcome=outcome, message=record.get("message") or f"{kind}: {outcome}", figure=figure(kind))
    return doc


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    text: str = ""


@dataclass
class Picture:
    """One <figure data-check> (or data-class-figure) of a page: its elements in order, and its caption."""

    name: str
    nodes: list[Node] = field(default_factory=list)
    caption: str = ""

    def with_class(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.attrs.get("class", "").split()]

    @property
    def svg(self) -> Node:
        return next(n for n in self.nodes if n.tag == "svg")

    def texts(self) -> list[str]:
        return [n.text for n in self.nodes if n.text]


class Pictures(HTMLParser):
    """The pictures of an HTML page (as written, or as Chromium's DOM dump), by their figure's name."""

    VOID = frozenset({"br", "img", "meta", "link", "input", "hr", "col", "wbr"})

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.pictures: dict[str, Picture] = {}
        self.figures_seen: list[str] = []
        self._current: Picture | None = None
        self._depth = 0
        self._in_caption = False
        self._open: list[Node] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "figure" and self._current is None:
            name = attributes.get("data-check") or attributes.get("data-class-figure")
            if name:
                self.figures_seen.append(name)
                self._current = self.pictures.setdefault(name, Picture(name))
                self._depth = 0
        if self._current is None or tag in self.VOID:
            return
        self._depth += 1
        self._in_caption = self._in_caption or tag == "figcaption"
        node = Node(tag, attributes)
        self._current.nodes.append(node)
        self._open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._current is not None:
            self._current.nodes.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if self._current is None or tag in self.VOID:
            return
        self._depth -= 1
        if self._open:
            self._open.pop()
        if tag == "figcaption":
            self._in_caption = False
        if self._depth == 0:
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is None:
            return
        if self._in_caption:
            self._current.caption += data
        elif self._open:
            self._open[-1].text += data


# ---- the browser ---------------------------------------------------------------------------------------------

def artifacts_dir() -> Path:
    folder = Path(os.environ.get("REDIS_GRADER_ARTIFACTS") or ROOT / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium() -> str:
    """Chromium's path; the test skips without one, except under CI=true, where that is a failure."""
    found = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                  if p and Path(p).is_file()), None)
    require(found is not None, "chromium is not installed (apt-get install -y chromium)")
    assert found is not None
    return found


def _browse(browser: str, page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    # --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               *action, page.as_uri()]
    # The timeout only guards against a hung browser; it is not an assertion about speed.
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def load(html: str, name: str, tmp_path: Path, height: int = 6000) -> Pictures:
    """The page's pictures as Chromium built them; a screenshot of the page to the artifacts folder."""
    browser = chromium()
    page = tmp_path / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    dom = _browse(browser, page, tmp_path / "profile", "--dump-dom").stdout
    shot = artifacts_dir() / f"{name}.png"
    _browse(browser, page, tmp_path / "profile", f"--screenshot={shot}", f"--window-size=1100,{height}",
            "--hide-scrollbars")
    assert shot.is_file() and shot.stat().st_size > 0
    return Pictures(dom)
