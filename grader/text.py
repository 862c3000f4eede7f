"""Wording shared by the checks' evidence and the reports, so that both say things the same way, and text they can
all encode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def more_text(hidden: int, what: str = "") -> str:
    """The one way evidence and reports say entries were left out: "… and 3 more", "… and 3 more log lines"."""
    return f"… and {hidden} more" + (f" {what}" if what else "")


def first_items(items: Sequence[str], limit: int) -> list[str]:
    """At most `limit` items, then a "… and N more" line for the rest."""
    if len(items) <= limit:
        return list(items)
    return [*items[:limit], more_text(len(items) - limit)]


def valid_unicode(document: Any) -> Any:
    """The document with every string (keys too) valid Unicode, changed in place and returned: a file name that is
    not UTF-8 (an archive made on Windows with Cyrillic names) reaches the grader as surrogate escapes, which no
    report, no JSON file and no terminal can encode. Its bytes are shown as `\\xff`; any other lone surrogate as
    `\\ud800`. Walked without recursion: evidence may hold a response nested as deep as Python parses."""
    root = [document]
    pending: list[tuple[Any, Any]] = [(root, 0)]
    while pending:
        container, key = pending.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = _valid_text(item)
        elif isinstance(item, (list, tuple)):
            if isinstance(item, tuple):
                item = container[key] = list(item)
            pending.extend((item, index) for index in range(len(item)))
        elif isinstance(item, dict):
            if any(isinstance(k, str) and _valid_text(k) is not k for k in item):
                fixed = {_valid_text(k) if isinstance(k, str) else k: v for k, v in item.items()}
                item.clear()
                item.update(fixed)
            pending.extend((item, k) for k in item)
    return root[0]


def _valid_text(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
