"""Reporters: each turns one result document (schema redis-grader/result/v1, a plain dict) into one format.

They read the document and nothing else, so any report can be re-made later from a saved JSON file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .gradebook import write_gradebook
from .gradescope import gradescope_results
from .html import render_html
from .junit import write_junit
from .markdown import render_markdown
from .overview import build_overview, render_index, write_overview
from .terminal import render_terminal

__all__ = [
    "build_overview",
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

    A path that cannot be written (a folder in the way, no permission) raises UsageError with one line.
    """
    writers: list[tuple[str, PathLike | None, Callable[[Path], None]]] = [
        ("JSON", json_path, lambda p: _write_text(p, _json_text(result))),
        ("JUnit", junit, lambda p: write_junit(result, p)),
        ("Markdown", markdown, lambda p: _write_text(p, render_markdown(result, _relative_href(p, html)))),
        ("HTML", html, lambda p: _write_text(p, render_html(result))),
        ("Gradescope", gradescope, lambda p: _write_text(p, _json_text(gradescope_results(result)))),
    ]
    written: list[Path] = []
    for kind, target, write in writers:
        if target is None or str(target) == "":
            continue
        path = Path(target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(f"cannot write the {kind} report to {path}: {reason}") from exc
        written.append(path)
    return written
