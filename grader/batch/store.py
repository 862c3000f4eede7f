"""The results folder of a batch: its layout, the stored results a resumed run finds, and how one is written.

    RESULTS_DIR/<name>/result.json   the result document; written last and atomically, so its presence
                                     with status "graded" means "done" when a run is resumed
    RESULTS_DIR/<name>/.graded-with.json  what it was graded with (rubric, --only, grader version) and the
                                     signature of result.json: a stored result made otherwise, or
                                     whose signature does not match, is graded again, never reused
    RESULTS_DIR/<name>/report.html, report.md, junit.xml, grader.log (the child's own output)
    RESULTS_DIR/gradebook.csv, RESULTS_DIR/index.html   over every result.json found
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.reporters import write_reports
from grader.text import valid_unicode

from .integrity import signature, signing_key, verified

RESULT = "result.json"
GRADED_WITH = ".graded-with.json"
REPORTS = {"html": "report.html", "markdown": "report.md", "junit": "junit.xml"}
LOG = "grader.log"
SIGNATURE = "result_hmac_sha256"  # in GRADED_WITH: see integrity.py


def stored_status(result_path: Path) -> str | None:
    """"graded" or "error" for a complete result document, None when missing or unreadable."""
    try:
        doc = _document(result_path.read_bytes())
    except OSError:
        return None
    return doc["status"] if doc else None


@dataclass(frozen=True)
class Stored:
    """What a results folder holds for one submission."""

    status: str | None  # "graded" | "error" for a complete result document, else None
    document: dict[str, Any] | None  # the result document, when complete
    settings: dict[str, Any] | None  # what it was graded with; None when unknown
    trusted: bool  # its signature matches: this batch's key wrote exactly these bytes with these settings


def read_stored(folder: Path, key: bytes | None = None) -> Stored:
    """The stored result in `folder`, checked against its signature (with the batch key unless `key`)."""
    try:
        data = (folder / RESULT).read_bytes()
    except OSError:
        return Stored(None, None, None, False)
    doc = _document(data)
    record = _read_json(folder / GRADED_WITH)
    if doc is None or record is None:
        return Stored(doc["status"] if doc else None, doc, None, False)
    claimed = record.pop(SIGNATURE, None)
    trusted = verified(key if key is not None else signing_key(create=False), data, record, folder.name, claimed)
    return Stored(doc["status"], doc, record, trusted)


def graded_with(folder: Path) -> dict[str, Any] | None:
    """The settings a stored result was graded with, or None when unknown (then it is not reused)."""
    record = _read_json(folder / GRADED_WITH)
    if record is not None:
        record.pop(SIGNATURE, None)
    return record


def forget_stored(folder: Path) -> None:
    """The stored result in `folder` is no longer trusted (its signature goes): a later run grades it again."""
    with contextlib.suppress(OSError):
        (folder / GRADED_WITH).unlink()


def make_results_folder(out: Path) -> None:
    """Create RESULTS_DIR (and its parents) if it is missing; UsageError with one line when it cannot be."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--out '{out}' is a file, not a folder") from None
    except OSError as exc:
        raise UsageError(f"cannot create the results folder '{out}': {exc.strerror or exc}") from None


def write_submission(folder: Path, doc: dict[str, Any], settings: dict[str, Any]) -> None:
    """The reports first, result.json last and atomically (tmp + rename): a run stopped at any instant
    leaves either no result.json or a complete one, never a half file that a resumed run would trust. The
    signature beside it is written before it: a run stopped between the two leaves an old result.json with a
    new signature, which a resumed run does not trust either."""
    valid_unicode(doc)  # the batch adds what it knows (the submission's path, its commit) to the child's document
    write_reports(doc, **{kind: folder / name for kind, name in REPORTS.items()})
    data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    record = dict(settings)
    key = signing_key()
    if key is not None:  # without a key (an unwritable state folder) the result is written, but never kept
        record[SIGNATURE] = signature(key, data, settings, folder.name)
    _replace(folder / GRADED_WITH, (json.dumps(record, indent=2) + "\n").encode())
    _replace(folder / RESULT, data)


def _replace(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _document(data: bytes) -> dict[str, Any] | None:
    """A complete result document: one whose status is "graded" or "error"."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("status") in ("graded", "error") else None


def collect_results(out: Path) -> list[tuple[str, dict[str, Any]]]:
    """(folder name, document) for every complete result.json under `out` that this batch's key signed,
    sorted by name. One written by anything else (a submission, a hand edit) is left out."""
    key = signing_key(create=False)
    found = []
    for path in sorted(out.glob(f"*/{RESULT}"), key=lambda p: p.parent.name):
        if path.parent.name.startswith("."):
            continue
        stored = read_stored(path.parent, key)
        if stored.trusted and stored.document is not None:
            found.append((path.parent.name, stored.document))
    return found
