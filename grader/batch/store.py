"""The results folder of a batch: its layout, the stored results a resumed run finds, and how one is written.

    RESULTS_DIR/<name>/result.json   the result document; written last and atomically, so its presence
                                     with status "graded" means "done" when a run is resumed
    RESULTS_DIR/<name>/.graded-with.json  what it was graded with (rubric, --only, grader version): a stored
                                     result made otherwise is graded again, never reused
    RESULTS_DIR/<name>/report.html, report.md, junit.xml, grader.log (the child's own output)
    RESULTS_DIR/gradebook.csv, RESULTS_DIR/index.html   over every result.json found
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from grader.reporters import write_reports

RESULT = "result.json"
GRADED_WITH = ".graded-with.json"
REPORTS = {"html": "report.html", "markdown": "report.md", "junit": "junit.xml"}
LOG = "grader.log"


def stored_status(result_path: Path) -> str | None:
    """"graded" or "error" for a complete result document, None when missing or unreadable."""
    try:
        doc = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    status = doc.get("status") if isinstance(doc, dict) else None
    return status if status in ("graded", "error") else None


def graded_with(folder: Path) -> dict[str, Any] | None:
    """The settings a stored result was graded with, or None when unknown (then it is not reused)."""
    try:
        settings = json.loads((folder / GRADED_WITH).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return settings if isinstance(settings, dict) else None


def write_submission(folder: Path, doc: dict[str, Any], settings: dict[str, Any]) -> None:
    """The reports first, result.json last and atomically (tmp + rename): a run stopped at any instant
    leaves either no result.json or a complete one, never a half file that a resumed run would trust."""
    write_reports(doc, **{kind: folder / name for kind, name in REPORTS.items()})
    (folder / GRADED_WITH).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    tmp = folder / f".{RESULT}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / RESULT)


def collect_results(out: Path) -> list[tuple[str, dict[str, Any]]]:
    """(folder name, document) for every complete result.json under `out`, sorted by name."""
    found = []
    for path in sorted(out.glob(f"*/{RESULT}"), key=lambda p: p.parent.name):
        if path.parent.name.startswith("."):
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(doc, dict):
            found.append((path.parent.name, doc))
    return found
