"""JSON Schemas (draft 2020-12) of the documents the grader writes, shipped inside the package so that a
consumer of `--json` output can validate what it reads. docs/result-schema.md explains every field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULT_V1 = Path(__file__).with_name("result-v1.schema.json")


def result_schema() -> dict[str, Any]:
    """The schema of the result document (`redis-grader/result/v1`), as a dict."""
    schema: dict[str, Any] = json.loads(RESULT_V1.read_text(encoding="utf-8"))
    return schema
