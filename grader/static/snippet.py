"""A few lines of the student's code around a line the evidence points at, so that a report can show the code
itself and not only its file and line number. Read as text, never imported."""

from __future__ import annotations

import re
from pathlib import Path

AROUND = 2  # lines shown on each side of the pointed line
MAX_WIDTH = 160  # a longer source line is cut: a report is no place for a minified blob
# A `where` evidence item: 'backend/app/main.py:42: <source line>' (see StaticFacts.located).
WHERE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):")


def _source_lines(root: Path, file: str) -> list[str] | None:
    """The lines of `file` (relative to `root`), or None when it is not a readable file inside `root`."""
    base = root.resolve()
    path = (base / file).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None


def snippet(root: Path, file: str, line: int, around: int = AROUND) -> list[str]:
    """Lines `line - around` .. `line + around` of `file`, each as '  41 | <text>', the pointed line marked
    '> 42 | <text>'; [] when the file cannot be read or has no such line."""
    lines = _source_lines(root, file)
    if lines is None or not 1 <= line <= len(lines):
        return []
    first, last = max(1, line - around), min(len(lines), line + around)
    width = len(str(last))
    shown = []
    for number in range(first, last + 1):
        text = lines[number - 1].expandtabs(4).rstrip()
        if len(text) > MAX_WIDTH:
            text = text[:MAX_WIDTH] + " …"
        mark = ">" if number == line else " "
        shown.append(f"{mark} {number:>{width}} | {text}".rstrip())
    return shown


def where_snippet(root: Path, where: str, around: int = AROUND) -> str:
    """The code around a `where` item ('file.py:N: <line>') as one text, the file's name first; '' when the item
    names no line or the file cannot be read."""
    found = WHERE.match(where)
    if found is None:
        return ""
    lines = snippet(root, found["file"], int(found["line"]), around)
    return "\n".join([found["file"], *lines]) if lines else ""


def code_evidence(root: Path, where: list[str], around: int = AROUND) -> dict[str, str]:
    """{"code": <the lines around the first located line>} to add to a failure's evidence next to its `where`
    items (the reports show it as a code block under the check); {} when there is nothing to show."""
    code = where_snippet(root, where[0], around) if where else ""
    return {"code": code} if code else {}
