"""Reporters: each turns one result document (schema redis-grader/result/v1, a plain dict) into one format.

They read the document and nothing else, so any report can be re-made later from a saved JSON file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError, cannot_write
from .gradebook import write_gradebook
from .gradescope import gradescope_results
from .html import render_html
from .junit import write_junit
from .markdown import render_markdown
from .overview import build_overview, render_index, write_overview
from .terminal import render_terminal

__all__ = [
    "build_overview",
    "check_report_paths",
    "gradescope_results",
    "render_html",
    "render_index",
    "render_markdown",
    "render_terminal",
    "write_gradebook",
    "write_junit",
    "write_overview",
    "write_reports",
]

PathLike = str | Path


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _json_text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _relative_href(markdown: Path, html: PathLike | None) -> str | None:
    """The HTML report's path relative to the Markdown report's folder (a link that works beside both files)."""
    if html is None or str(html) == "":
        return None
    try:
        return Path(os.path.relpath(Path(html).resolve(), markdown.resolve().parent)).as_posix()
    except ValueError:  # another drive on Windows: no relative path
        return None


# write_reports' keywords, and the name of the report each one asks for.
REPORT_KINDS = {"json_path": "JSON", "junit": "JUnit", "markdown": "Markdown", "html": "HTML", "gradescope": "Gradescope"}


def _report_paths(targets: dict[str, PathLike | None]) -> list[tuple[str, Path]]:
    """(report kind, path) of each report asked for (a keyword of REPORT_KINDS with a path), in that order."""
    return [(REPORT_KINDS[keyword], Path(target)) for keyword, target in targets.items()
            if target is not None and str(target) != ""]


def check_report_paths(**targets: PathLike | None) -> None:
    """Before grading: each report path (write_reports' keywords) can be written, so that a mistyped path costs
    one line now rather than the report after a grading. Tried for real (opened for appending: permissions alone
    do not tell, for root or on a read-only mount); nothing the try creates is left behind. Raises UsageError
    with one line."""
    for kind, path in _report_paths(targets):
        made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
        made_file = not path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise cannot_write(path, exc, f"the {kind} report") from exc
        finally:
            with contextlib.suppress(OSError):
                if made_file:
                    path.unlink()
                for folder in made:  # deepest first
                    folder.rmdir()


def write_reports(
    result: dict[str, Any],
    *,
    json_path: PathLike | None = None,
    junit: PathLike | None = None,
    markdown: PathLike | None = None,
    html: PathLike | None = None,
    gradescope: PathLike | None = None,
) -> list[Path]:
    """Write each requested report (missing parent folders are created); returns the paths written.

    A path that cannot be written (a folder in the way, no permission, a full disk) raises UsageError with one
    line, after every other report has been written: one bad path never costs the others.
    """
    writers: dict[str, Callable[[Path], None]] = {
        "JSON": lambda p: _write_text(p, _json_text(result)),
        "JUnit": lambda p: write_junit(result, p),
        "Markdown": lambda p: _write_text(p, render_markdown(result, _relative_href(p, html))),
        "HTML": lambda p: _write_text(p, render_html(result)),
        "Gradescope": lambda p: _write_text(p, _json_text(gradescope_results(result))),
    }
    written: list[Path] = []
    problems: list[str] = []
    asked = {"json_path": json_path, "junit": junit, "markdown": markdown, "html": html, "gradescope": gradescope}
    for kind, path in _report_paths(asked):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writers[kind](path)
        except OSError as exc:
            problems.append(str(cannot_write(path, exc, f"the {kind} report")))
            continue
        written.append(path)
    if problems:
        raise UsageError("; ".join(problems))
    return written
