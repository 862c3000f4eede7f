"""JSON the submission made - a response body, a value its app cached, its suite's coverage report - read as data.

Python's JSON parser recurses once per nesting level, so a document nested deep enough (`[[[[...]]]]`, a few
hundred kilobytes) raises RecursionError, not the ValueError of malformed JSON. From a submission both are the
same thing: no JSON the grader can use.
"""

from __future__ import annotations

import json
from typing import Any


def parse_json(raw: str | bytes) -> Any | None:
    """The JSON value of `raw`; None when it is not JSON (malformed, not UTF-8, or nested too deep to read)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
