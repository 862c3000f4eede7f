"""What a check returns: an outcome, one line a student understands, and the evidence behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
SKIPPED = "skipped"
OUTCOMES = (PASSED, FAILED, ERROR, SKIPPED)


@dataclass
class CheckOutcome:
    outcome: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    # A skipped check that does not apply to this submission (e.g. it has no tests of its own) is
    # left out of max_score; one skipped because something it needs failed still counts against it.
    applicable: bool = True
    duration_s: float = 0.0  # set by the runner


def passed(message: str, **evidence: Any) -> CheckOutcome:
    return CheckOutcome(PASSED, message, evidence)


def failed(message: str, **evidence: Any) -> CheckOutcome:
    return CheckOutcome(FAILED, message, evidence)


def error(message: str, **evidence: Any) -> CheckOutcome:
    return CheckOutcome(ERROR, message, evidence)


def skipped(message: str, *, applicable: bool = True, **evidence: Any) -> CheckOutcome:
    return CheckOutcome(SKIPPED, message, evidence, applicable=applicable)
