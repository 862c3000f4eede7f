"""A class's answers as a CSV, the way a form export gives them: a `student` column, then one column per
question id. A choice cell may hold the key ("b") or the choice's text as the form showed it; a
multiple-choice cell lists them separated by commas or semicolons."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from .answers import keys_given, resolve_key, short_given
from .bank import choice_key
from .files import CLASS_CSV_MAX_BYTES, read_text
from .model import Answers, Bank, Given, Question, QuizInputError, squash

STUDENT_COLUMN = "student"
# Columns a form adds on its own; they are not questions and are left out.
FORM_COLUMNS = {"timestamp", "email", "email address", "score", "name"}
_SEPARATOR = re.compile(r"\s*[;,]\s*")


def load_class_csv(path: Path, bank: Bank) -> list[Answers]:
    text = read_text(path, CLASS_CSV_MAX_BYTES)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip() for cell in next(reader, [])]
    columns = _columns(header, bank, path)
    student_at = header.index(next(h for h in header if h.lower() == STUDENT_COLUMN))
    students: list[Answers] = []
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        name = row[student_at].strip() if student_at < len(row) else ""
        where = f"{path} line {line_no}"
        if not name:
            raise QuizInputError(where, "the student column is empty")
        if any(s.student == name for s in students):
            raise QuizInputError(where, f"student '{name}' has a second row")
        given = {}
        for index, question in columns.items():
            cell = row[index] if index < len(row) else ""
            given[question.id] = cell_given(question, cell, f"{where} (student '{name}')")
        students.append(Answers(name, given, str(path)))
    if not students:
        raise QuizInputError(path, "no student rows")
    return students


def _columns(header: list[str], bank: Bank, path: Path) -> dict[int, Question]:
    if not any(h.lower() == STUDENT_COLUMN for h in header):
        raise QuizInputError(path, f"the header has no '{STUDENT_COLUMN}' column (expected: student,<question id>,...)")
    columns: dict[int, Question] = {}
    for index, name in enumerate(header):
        if name.lower() == STUDENT_COLUMN or name.lower() in FORM_COLUMNS:
            continue
        question = bank.question(name)
        if question is None:
            ids = ", ".join(bank.ids)
            raise QuizInputError(path, f"column '{name}' is not a question of the bank '{bank.name}' (its ids: {ids})")
        if question in columns.values():
            raise QuizInputError(path, "two columns answer the same question", question.id)
        columns[index] = question
    return columns


def cell_given(question: Question, cell: str, where: str) -> Given:
    cell = cell.strip()
    if not cell:
        return Given()
    if question.kind == "short":
        return short_given(question, cell, where)
    whole = _by_key_or_text(question, cell)
    if whole is not None:
        return Given(keys=(whole,))
    if question.kind == "single":
        return Given(keys=(resolve_key(question, cell, where),))
    return keys_given(question, _split_choices(question, cell, where), where)


def _by_key_or_text(question: Question, text: str) -> str | None:
    key = choice_key(text)
    if key in question.choices:
        return key
    matches = [k for k, choice in question.choices.items() if squash(choice) == squash(text)]
    if not matches:
        matches = [k for k in question.choices if k.casefold() == text.casefold()]
    return matches[0] if len(matches) == 1 else None


def _split_choices(question: Question, cell: str, where: str) -> list[str]:
    """"a, c" or "text one, text two": a choice's own text may hold a comma, so pieces are joined back
    together, longest first, until they name a choice."""
    pieces = _SEPARATOR.split(cell)
    keys: list[str] = []
    start = 0
    while start < len(pieces):
        for end in range(len(pieces), start, -1):
            key = _by_key_or_text(question, ", ".join(pieces[start:end]))
            if key is not None:
                keys.append(key)
                start = end
                break
        else:
            resolve_key(question, pieces[start], where)  # raises, naming the piece that matches nothing
    return keys
