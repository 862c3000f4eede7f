"""Reading the quiz's input files safely: a size cap before anything is parsed, UTF-8 only, YAML through
`yaml.safe_load` (no Python objects), and every failure as a QuizInputError naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .model import QuizInputError

KIB = 1024
# A student's answers to 10-20 questions fit in a few KiB; the cap keeps a hostile file from costing memory.
ANSWERS_MAX_BYTES = 256 * KIB
BANK_MAX_BYTES = 1024 * KIB
CLASS_CSV_MAX_BYTES = 8 * 1024 * KIB


def read_text(path: Path, max_bytes: int) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise QuizInputError(path, f"cannot read it: {exc.strerror or exc}") from None
    if not path.is_file():
        raise QuizInputError(path, "not a file")
    if size > max_bytes:
        raise QuizInputError(path, f"too large ({size} bytes; the limit is {max_bytes // KIB} KiB)")
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise QuizInputError(path, f"cannot read it: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise QuizInputError(path, f"too large (the limit is {max_bytes // KIB} KiB)")
    try:
        # utf-8-sig: spreadsheets and Windows editors put a BOM in front of UTF-8 files.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise QuizInputError(path, f"not UTF-8 text (byte {exc.start})") from None


def parse_data(path: Path, text: str) -> Any:
    """JSON for *.json, YAML for anything else (YAML reads most JSON too)."""
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise QuizInputError(path, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise QuizInputError(path, f"not valid YAML: {exc.problem or exc}{at}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise QuizInputError(path, f"not valid YAML: {exc}") from None
