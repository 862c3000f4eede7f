"""What a check returns: an outcome, one line a student understands, and the evidence behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Outcome(str, Enum):
    """A check's verdict. A `str` whose value is what the result document says ("passed", ...), so it compares
    equal to that string and prints as it."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


PASSED, FAILED, ERROR, SKIPPED = Outcome.PASSED, Outcome.FAILED, Outcome.ERROR, Outcome.SKIPPED
OUTCOMES = tuple(Outcome)


@dataclass
class CheckOutcome:
    outcome: Outcome
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    # A skipped check that does not apply to this submission (e.g. it has no tests of its own) is
    # left out of max_score; one skipped because something it needs failed still counts against it.
    applicable: bool = True
    duration_s: float = 0.0  # set by the runner
    # What the student should do next follows what was seen: a check that observed something other than the
    # defect its rubric hint describes names its own hint, and the textbook sections that teach that fix
    # (ids of the rubric's [sections]; () for none). None keeps the rubric's.
    hint: str | None = None
    sections: tuple[str, ...] | None = None
    # What the check saw over time, as plain data for the report's pictures (docs/figures.md; grader/figures.py
    # builds it). It describes, never decides: the verdict above stands without it.
    figure: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.outcome = Outcome(self.outcome)  # a plain "passed" is accepted, and checked


# `figure=` is a keyword of its own in each constructor, never a piece of evidence.


def passed(message: str, *, figure: dict[str, Any] | None = None, **evidence: Any) -> CheckOutcome:
    return CheckOutcome(Outcome.PASSED, message, evidence, figure=figure)


def failed(message: str, *, hint: str | None = None, sections: tuple[str, ...] | None = None,
           figure: dict[str, Any] | None = None, **evidence: Any) -> CheckOutcome:
    return CheckOutcome(Outcome.FAILED, message, evidence, hint=hint, sections=sections, figure=figure)


def error(message: str, *, hint: str | None = None, sections: tuple[str, ...] | None = None,
          figure: dict[str, Any] | None = None, **evidence: Any) -> CheckOutcome:
    return CheckOutcome(Outcome.ERROR, message, evidence, hint=hint, sections=sections, figure=figure)


def skipped(message: str, *, applicable: bool = True, figure: dict[str, Any] | None = None,
            **evidence: Any) -> CheckOutcome:
    return CheckOutcome(Outcome.SKIPPED, message, evidence, applicable=applicable, figure=figure)
