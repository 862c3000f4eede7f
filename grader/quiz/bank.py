"""Question banks: found by name (shipped in quizzes/) or path, read from YAML, JSON or Markdown, and
validated into a Bank. Every problem is a QuizInputError naming the file, the question and what is wrong."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from grader.resources import quizzes_dir
from grader.rubric import Rubric, Section

from .files import BANK_MAX_BYTES, parse_data, read_text
from .markdown_bank import parse_markdown_bank
from .model import DEFAULT_PASS_RATIO, KINDS, Bank, Question, QuizInputError, ShortAnswer, brief

SUFFIXES = (".yaml", ".yml", ".json", ".md")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TOP_KEYS = {"title", "pass_ratio", "questions", "sections"}
QUESTION_KEYS = {"id", "text", "kind", "choices", "answer", "sections"}


def resolve(name_or_path: str | Path) -> Path:
    """A bank by path, or by name: quizzes/<name>.yaml (or .yml, .json, .md) shipped with the grader."""
    path = Path(name_or_path)
    if path.suffix.lower() in SUFFIXES or path.exists() or len(path.parts) > 1:
        if not path.is_file():
            raise QuizInputError(path, "quiz bank not found")
        return path
    for suffix in SUFFIXES:
        shipped = quizzes_dir() / f"{name_or_path}{suffix}"
        if shipped.is_file():
            return shipped
    known = ", ".join(sorted({p.stem for p in quizzes_dir().iterdir() if p.suffix in SUFFIXES}))
    problem = f"no such quiz bank (shipped: {known}; or pass a path to a .yaml, .json or .md file)"
    raise QuizInputError(name_or_path, problem)


def load_bank(name_or_path: str | Path, rubric: Rubric | None = None) -> Bank:
    """Read and validate a bank; with a rubric, also check that every section it names exists."""
    path = resolve(name_or_path)
    text = read_text(path, BANK_MAX_BYTES)
    data = parse_markdown_bank(path, text) if path.suffix.lower() == ".md" else parse_data(path, text)
    bank = parse_bank(data, path)
    if rubric is not None:
        check_sections(bank, rubric)
    return bank


def parse_bank(data: Any, source: Path) -> Bank:
    if not isinstance(data, dict):
        raise QuizInputError(source, "a bank is a mapping with title, pass_ratio and questions")
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
    if unknown:
        known = ", ".join(sorted(TOP_KEYS))
        raise QuizInputError(source, f"unknown top-level key(s) {', '.join(unknown)} (known: {known})")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise QuizInputError(source, "'title' is missing or not a text")
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise QuizInputError(source, "'questions' is missing or not a non-empty list")
    questions: list[Question] = []
    for index, raw in enumerate(raw_questions, start=1):
        question = parse_question(raw, source, index)
        if any(q.id == question.id for q in questions):
            raise QuizInputError(source, "the id is used by more than one question", question.id)
        questions.append(question)
    return Bank(
        title=title.strip(),
        pass_ratio=_pass_ratio(data.get("pass_ratio", DEFAULT_PASS_RATIO), source),
        questions=questions,
        name=source.stem,
        source=source,
        sections=_extra_sections(data.get("sections", {}), source),
    )


def _pass_ratio(value: Any, source: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise QuizInputError(source, f"'pass_ratio' must be a number between 0 and 1 (got {brief(value)})")
    if not 0 < value <= 1:
        raise QuizInputError(source, f"'pass_ratio' must be above 0 and at most 1 (got {value}; 0.8 means 80 %)")
    return float(value)


def _extra_sections(value: Any, source: Path) -> dict[str, Section]:
    if not isinstance(value, dict):
        raise QuizInputError(source, "'sections' must map a section id to {title, path}")
    sections = {}
    for section_id, table in value.items():
        if not isinstance(table, dict) or not all(isinstance(table.get(k), str) for k in ("title", "path")):
            raise QuizInputError(source, f"sections.{section_id} needs a 'title' and a 'path' (texts)")
        sections[str(section_id)] = Section(str(section_id), table["title"], table["path"])
    return sections


def parse_question(raw: Any, source: Path, index: int) -> Question:
    if not isinstance(raw, dict):
        raise QuizInputError(source, f"question #{index} is not a mapping")
    qid = raw.get("id")
    if not isinstance(qid, str) or not ID_PATTERN.fullmatch(qid):
        problem = f"question #{index} needs an 'id' of letters, digits, '.', '_' or '-' (got {brief(qid)})"
        raise QuizInputError(source, problem)
    unknown = sorted(str(k) for k in raw if k not in QUESTION_KEYS)
    if unknown:
        known = ", ".join(sorted(QUESTION_KEYS))
        raise QuizInputError(source, f"unknown key(s) {', '.join(unknown)} (known: {known})", qid)
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise QuizInputError(source, "'text' is missing or empty", qid)
    kind = raw.get("kind")
    if kind not in KINDS:
        raise QuizInputError(source, f"'kind' must be one of {', '.join(KINDS)} (got {brief(kind)})", qid)
    sections = raw.get("sections", [])
    if not isinstance(sections, list) or not all(isinstance(s, str) and s for s in sections):
        raise QuizInputError(source, "'sections' must be a list of section ids", qid)
    if kind == "short":
        if "choices" in raw:
            raise QuizInputError(source, "a short question has no 'choices'", qid)
        accepted = _short_answers(raw.get("answer"), source, qid)
        return Question(qid, text.strip(), kind, {}, tuple(a.text for a in accepted), tuple(sections), accepted)
    choices = _choices(raw.get("choices"), source, qid)
    answer = _choice_answer(raw.get("answer"), kind, choices, source, qid)
    return Question(qid, text.strip(), kind, choices, answer, tuple(sections))


def choice_key(value: Any) -> str | None:
    """A choice key as text: YAML reads `1:` as an int, which is fine; `yes:` as a boolean, which is not."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    key = str(value).strip()
    return key or None


def _choices(value: Any, source: Path, qid: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) < 2:
        raise QuizInputError(source, "'choices' must map at least two choice keys to their texts", qid)
    choices: dict[str, str] = {}
    for raw_key, text in value.items():
        key = choice_key(raw_key)
        if key is None:
            problem = f"choice key {brief(raw_key)} is not a text (quote keys like yes/no/on/off)"
            raise QuizInputError(source, problem, qid)
        if not isinstance(text, (str, int, float)) or isinstance(text, bool) or not str(text).strip():
            raise QuizInputError(source, f"choice '{key}' has no text", qid)
        choices[key] = str(text).strip()
    return choices


def _choice_answer(value: Any, kind: str, choices: dict[str, str], source: Path, qid: str) -> tuple[str, ...]:
    if value is None:
        raise QuizInputError(source, "'answer' is missing", qid)
    if kind == "single":
        if isinstance(value, list):
            raise QuizInputError(source, "the answer of a single-choice question is one choice key, not a list", qid)
        raw_keys = [value]
    else:
        if not isinstance(value, list) or not value:
            problem = "the answer of a multiple-choice question is a non-empty list of choice keys"
            raise QuizInputError(source, problem, qid)
        raw_keys = value
    keys = []
    for raw_key in raw_keys:
        key = choice_key(raw_key)
        if key not in choices:
            problem = f"answer {brief(raw_key)} is not one of its choices ({', '.join(choices)})"
            raise QuizInputError(source, problem, qid)
        if key in keys:
            raise QuizInputError(source, f"answer '{key}' is listed twice", qid)
        keys.append(key)
    return tuple(keys)


def _short_answers(value: Any, source: Path, qid: str) -> tuple[ShortAnswer, ...]:
    raw = value if isinstance(value, list) else [value]
    if not raw or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) and str(a).strip() for a in raw):
        raise QuizInputError(source, "the answer of a short question is a list of accepted answers (texts)", qid)
    accepted = []
    for item in raw:
        text = str(item).strip()
        if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
            try:
                pattern = re.compile(text[1:-1], re.IGNORECASE)
            except re.error as exc:
                problem = f"accepted answer {text} is not a valid regular expression: {exc}"
                raise QuizInputError(source, problem, qid) from None
            accepted.append(ShortAnswer(text, pattern))
        else:
            accepted.append(ShortAnswer(text))
    return tuple(accepted)


def check_sections(bank: Bank, rubric: Rubric) -> None:
    """Every section a question names must be one the rubric (or the bank itself) defines, so a wrong
    answer always links to a real textbook page."""
    for question in bank.questions:
        for section_id in question.sections:
            if section_id not in rubric.sections and section_id not in bank.sections:
                raise QuizInputError(
                    bank.source,
                    f"section '{section_id}' is neither in the [sections] of rubric '{rubric.name}' "
                    "nor in the bank's sections",
                    question.id,
                )
