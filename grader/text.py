"""Wording shared by the checks' evidence and the reports, so that both say things the same way, and text they can
all encode."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# What a submission controls (its folder's name, its app's answers and log, its Redis keys, its tests' output)
# reaches terminals and reports. A terminal acts on control codes: clears the screen, sets its title, moves the
# cursor back up to overwrite the grade line. ANSI sequences go whole; then C0 controls but tab and newline, DEL,
# the C1 controls (U+0080-U+009F: U+009B is a one-character "ESC ["), and the bidirectional overrides and isolates
# that show the rest of a line reversed. XML 1.0 forbids most of these too, even as character references.
_ESCAPE_SEQUENCES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff]")


def more_text(hidden: int, what: str = "") -> str:
    """The one way evidence and reports say entries were left out: "… and 3 more", "… and 3 more log lines"."""
    return f"… and {hidden} more" + (f" {what}" if what else "")


# A log line longer than this is cut: an app that logs a whole response per line would otherwise fill every
# report (each check that ends in an error carries the log's tail), past the 1 MiB GitHub takes as a job summary.
LOG_LINE_WIDTH = 500


def clip_line(line: str, width: int = LOG_LINE_WIDTH) -> str:
    """`line` cut to `width` characters, saying how many more there were."""
    return line if len(line) <= width else f"{line[:width]}… ({len(line) - width} more characters)"


def log_tail(text: str, lines: int) -> str:
    """The last `lines` lines of a log, each cut to LOG_LINE_WIDTH characters."""
    return "\n".join(clip_line(line) for line in text.splitlines()[-lines:]) if lines > 0 else ""


def first_items(items: Sequence[str], limit: int) -> list[str]:
    """At most `limit` items, then a "… and N more" line for the rest."""
    if len(items) <= limit:
        return list(items)
    return [*items[:limit], more_text(len(items) - limit)]


def printable(text: str) -> str:
    """`text` with nothing a terminal or an XML file would act on (see _UNPRINTABLE); tabs and newlines are kept,
    and a carriage return becomes a newline (alone it returns the cursor, and what follows overwrites the line)."""
    text = _ESCAPE_SEQUENCES.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _UNPRINTABLE.sub("", text)


def printable_line(text: str) -> str:
    """printable(), on one line: each newline or tab becomes a space. Runs of spaces are kept: this may be a name
    that a class's other files spell the same way."""
    return printable(text).replace("\n", " ").replace("\t", " ")


def printable_name(name: str) -> str:
    """A submission's name (a folder's, an archive's, a roster row's) on one line, with each control character,
    escape and bidirectional override shown as its code (`\\x01`, `\\u202e`) instead of dropped: two folders whose
    names differ only by such a character must not read as one in a gradebook or a progress line."""
    return _NAME_UNPRINTABLE.sub(_escaped, name)


_NAME_UNPRINTABLE = re.compile(_UNPRINTABLE.pattern[:-1] + "\\t\\n\\r]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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
