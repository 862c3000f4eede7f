"""A student's answers: a YAML or JSON file mapping question id -> answer (a submission's quiz.yaml), read as
untrusted input (size cap, safe_load, every value checked against the bank)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .bank import choice_key
from .files import ANSWERS_MAX_BYTES, parse_data, read_text
from .model import Answers, Bank, Given, Question, QuizInputError, brief

ANSWER_FILE_NAMES = ("quiz.yaml", "quiz.yml", "quiz.json")
# Longer than any sensible short answer; it also bounds the work a bank's regular expression can be made to do.
MAX_SHORT_ANSWER = 1000
_KEY_SEPARATORS = re.compile(r"[,;\s]+")


def student_name(path: Path) -> str:
    """quiz.yaml is named after its folder (the submission); any other file after itself."""
    return path.parent.resolve().name if path.name.lower() in ANSWER_FILE_NAMES else path.stem


def load_answers(path: Path, bank: Bank, student: str | None = None) -> Answers:
    data = parse_data(path, read_text(path, ANSWERS_MAX_BYTES))
    if data is None:
        data = {}  # an empty file: nothing answered
    if not isinstance(data, dict):
        raise QuizInputError(path, "answers are a mapping of question id -> answer")
    given: dict[str, Given] = {}
    for raw_id, value in data.items():
        qid = str(raw_id)
        question = bank.question(qid)
        if question is None:
            ids = ", ".join(bank.ids)
            raise QuizInputError(path, f"not a question of the bank '{bank.name}' (its ids: {ids})", qid)
        given[qid] = parse_given(question, value, path)
    return Answers(student or student_name(path), given, str(path))


def parse_given(question: Question, value: Any, source: Path | str) -> Given:
    """One answer from a YAML/JSON value: a choice key, a list of keys, or a text (short)."""
    if value is None or value == "" or value == []:
        return Given()
    if isinstance(value, bool):
        problem = "the answer is a YAML boolean (yes/no/true/false/on/off): put it in quotes"
        raise QuizInputError(source, problem, question.id)
    if question.kind == "short":
        if not isinstance(value, (str, int, float)):
            raise QuizInputError(source, "the answer of a short question is one text", question.id)
        return short_given(question, str(value), source)
    if question.kind == "single":
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, (list, dict)):
            raise QuizInputError(source, "the answer of a single-choice question is one choice key", question.id)
        return Given(keys=(resolve_key(question, value, source),))
    if isinstance(value, str):
        value = [part for part in _KEY_SEPARATORS.split(value) if part]
    if not isinstance(value, list):
        value = [value]
    return keys_given(question, [resolve_key(question, v, source) for v in value], source)


def short_given(question: Question, text: str, source: Path | str) -> Given:
    if len(text) > MAX_SHORT_ANSWER:
        raise QuizInputError(source, f"the answer is longer than {MAX_SHORT_ANSWER} characters", question.id)
    return Given(text=text.strip())


def keys_given(question: Question, keys: list[str], source: Path | str) -> Given:
    unique = list(dict.fromkeys(keys))
    if question.kind == "single" and len(unique) > 1:
        raise QuizInputError(source, f"a single-choice question takes one answer, not {len(unique)}", question.id)
    return Given(keys=tuple(unique))


def resolve_key(question: Question, value: Any, source: Path | str) -> str:
    """The choice key a student meant: the key as written, or in another case ("B" for "b")."""
    key = choice_key(value)
    if key is not None:
        if key in question.choices:
            return key
        folded = [k for k in question.choices if k.casefold() == key.casefold()]
        if len(folded) == 1:
            return folded[0]
    shown = f"'{value}'" if isinstance(value, str) and len(value) <= 60 else brief(value)
    raise QuizInputError(source, f"{shown} is not one of its choices ({', '.join(question.choices)})", question.id)
