"""The Markdown bank format, read into the same structure as a YAML bank (then validated the same way).

    # Title of the quiz
    Pass ratio: 0.8

    ## question-id
    Sections: R2.1, RA2.1
    Kind: multiple            (optional: one [x] means single, several mean multiple)

    The question's text, one or more paragraphs.

    - [ ] a: a wrong choice
    - [x] b: the right choice

    ## short-question-id
    Sections: R3.1
    Answer: INCR              (one line per accepted answer; /.../ is a regular expression)

    The question's text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .model import QuizInputError

_QUESTION = re.compile(r"^##\s+(\S+)\s*$")
_TITLE = re.compile(r"^#\s+(.+?)\s*$")
_FIELD = re.compile(r"^(kind|sections|answer|pass ratio|pass_ratio)\s*:\s*(.*?)\s*$", re.IGNORECASE)
_CHOICE = re.compile(r"^\s*[-*]\s+\[([ xX])\]\s+([^\s:)]+)\s*[:)]\s+(.+?)\s*$")


def parse_markdown_bank(source: Path, text: str) -> dict[str, Any]:
    data: dict[str, Any] = {"questions": []}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        heading = _QUESTION.match(line)
        if heading:
            current = {"id": heading.group(1), "_text": [], "_checked": [], "_answers": []}
            data["questions"].append(current)
        elif current is None:
            _header_line(line, data, source)
        else:
            _question_line(line, current, source)
    data["questions"] = [_finish(q) for q in data["questions"]]
    return data


def _header_line(line: str, data: dict[str, Any], source: Path) -> None:
    title = _TITLE.match(line)
    field = _FIELD.match(line)
    if title and "title" not in data:
        data["title"] = title.group(1)
    elif field and field.group(1).lower().replace("_", " ") == "pass ratio":
        data["pass_ratio"] = _ratio(field.group(2), source)


def _ratio(text: str, source: Path) -> float:
    try:
        return float(text[:-1].strip()) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise QuizInputError(source, f"'Pass ratio: {text}' is not a number like 0.8 or 80 %") from None


def _question_line(line: str, question: dict[str, Any], source: Path) -> None:
    field = _FIELD.match(line)
    choice = _CHOICE.match(line)
    if choice:
        question.setdefault("choices", {})[choice.group(2)] = choice.group(3)
        if choice.group(1) != " ":
            question["_checked"].append(choice.group(2))
    elif field:
        name, value = field.group(1).lower(), field.group(2)
        if name == "kind":
            question["kind"] = value.lower()
        elif name == "sections":
            question["sections"] = [s for s in re.split(r"[,\s]+", value) if s]
        elif name == "answer":
            question["_answers"].append(value)
        else:
            raise QuizInputError(source, "'Pass ratio' belongs before the first question", question["id"])
    else:
        question["_text"].append(line)


def _finish(question: dict[str, Any]) -> dict[str, Any]:
    lines, checked, answers = question.pop("_text"), question.pop("_checked"), question.pop("_answers")
    question["text"] = "\n".join(lines).strip()
    if "kind" not in question:
        question["kind"] = "short" if answers else ("multiple" if len(checked) > 1 else "single")
    if question["kind"] == "short":
        question["answer"] = answers
    elif question["kind"] == "multiple":
        question["answer"] = checked
    else:
        # Zero or several ticks on a single-choice question: pass them on as they are, so the validation
        # reports the problem in its usual words.
        question["answer"] = checked[0] if len(checked) == 1 else (checked or None)
    return question
