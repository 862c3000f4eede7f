"""What the quiz tests share: the shipped rubric and bank, answers made from the bank's own key, the CLI."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from grader import rubric as rubrics
from grader.checking import load_checks
from grader.quiz import Bank, load_bank
from grader.quiz.cli import quiz

RESULTS = Path(__file__).parent / "results"


@lru_cache(maxsize=1)
def shipped_rubric() -> rubrics.Rubric:
    return rubrics.load("redis-module", set(load_checks()))


@lru_cache(maxsize=1)
def shipped_bank() -> Bank:
    return load_bank("redis-module", shipped_rubric())


# The fixtures of the quiz test modules, which load this module as a plugin (`pytest_plugins`).
@pytest.fixture(scope="module")
def rubric() -> rubrics.Rubric:
    return shipped_rubric()


@pytest.fixture(scope="module")
def bank() -> Bank:
    return shipped_bank()


def run(*args: str) -> Result:
    """`grader quiz ARGS...` through click's test runner."""
    return CliRunner().invoke(quiz, list(args))


def key_answers(bank: Bank) -> dict[str, Any]:
    """The bank's own key, as a student would write it in quiz.yaml."""
    answers: dict[str, Any] = {}
    for q in bank.questions:
        answers[q.id] = q.answer[0] if q.kind in ("single", "short") else list(q.answer)
    return answers


def wrong_answer(bank: Bank, question_id: str) -> Any:
    q = bank.question(question_id)
    assert q is not None
    if q.kind == "short":
        return "GET something"
    wrong = next(k for k in q.choices if k not in q.answer)
    return wrong if q.kind == "single" else [wrong]


def answers_with_wrong(bank: Bank, wrong: int) -> dict[str, Any]:
    """The key with its first `wrong` questions answered wrong."""
    answers = key_answers(bank)
    for q in bank.questions[:wrong]:
        answers[q.id] = wrong_answer(bank, q.id)
    return answers


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def graded_doc() -> dict[str, Any]:
    """tests/results/graded.json: a graded result document (55 of 75 points, grade B)."""
    return json.loads((RESULTS / "graded.json").read_text(encoding="utf-8"))
