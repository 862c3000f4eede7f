"""The quiz's data model: a bank of questions and the answers one student gave.

Every file the quiz reads (a bank in YAML, JSON or Markdown; a student's answers; a class CSV) becomes these
dataclasses, so grading, the printed paper and the reports never see the file formats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import UsageError
from grader.rubric import Section

KINDS = ("single", "multiple", "short")
DEFAULT_PASS_RATIO = 0.8


class QuizInputError(UsageError):
    """A broken bank or answers file (exit 2). The message names the file, the question and the problem."""

    def __init__(self, source: Path | str, problem: str, question: str | None = None) -> None:
        where = f"{source}: question '{question}'" if question else str(source)
        super().__init__(f"{where}: {problem}")
        self.source = str(source)
        self.question = question
        self.problem = problem


@dataclass(frozen=True)
class ShortAnswer:
    """One accepted answer of a `short` question: plain text, or a regular expression written `/.../`."""

    text: str
    pattern: re.Pattern[str] | None = None

    def accepts(self, given: str) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(given.strip()) is not None
        return squash(self.text) == squash(given)


def brief(value: object, width: int = 60) -> str:
    """A value for an error message. Only scalars are shown: YAML aliases can make a small file hold a list
    whose text is gigabytes long, so a list or mapping is named by its type alone."""
    if isinstance(value, (list, tuple, dict, set)):
        return f"a {type(value).__name__}"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def squash(text: str) -> str:
    """Case- and whitespace-insensitive form: "decode_responses = True" and "DECODE_RESPONSES=true" agree."""
    return "".join(text.split()).casefold()


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    kind: str  # single | multiple | short
    choices: dict[str, str]  # key -> text, in the bank's order (empty for `short`)
    answer: tuple[str, ...]  # the correct key(s); for `short`, the accepted answers as written
    sections: tuple[str, ...]
    accepted: tuple[ShortAnswer, ...] = ()  # `short` only

    def is_correct(self, given: Given) -> bool:
        if given.empty:
            return False
        if self.kind == "short":
            return any(a.accepts(given.text) for a in self.accepted)
        return set(given.keys) == set(self.answer)


@dataclass
class Bank:
    title: str
    pass_ratio: float
    questions: list[Question]
    name: str = ""  # the file's stem: what a rubric's [quiz] bank names
    source: Path = field(default_factory=Path)
    # Textbook sections the bank adds to the rubric's (e.g. one that no check teaches), by id.
    sections: dict[str, Section] = field(default_factory=dict)

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.questions]


@dataclass(frozen=True)
class Given:
    """What a student answered to one question: choice keys (single/multiple) or a text (short)."""

    keys: tuple[str, ...] = ()
    text: str = ""

    @property
    def empty(self) -> bool:
        return not self.keys and not self.text.strip()


@dataclass
class Answers:
    """One student's answers, by question id; a question left out is unanswered (wrong)."""

    student: str
    given: dict[str, Given]
    source: str = ""
