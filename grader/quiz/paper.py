"""A student's copy of the quiz in Markdown: the questions and choices, never the answers. With a seed (the
student's name) the choices come in an order of that student's own; the keys stay with their texts, so
the answers are graded against the same key whoever got which order."""

from __future__ import annotations

import random

from .model import Bank, Question

KIND_NOTES = {
    "single": "one choice, its key",
    "multiple": "all that apply, a list of keys",
    "short": "short answer, a text",
}


def render_paper(bank: Bank, seed: str | None = None) -> str:
    lines = [f"# {bank.title}", ""]
    if seed:
        lines += [f"Student: **{seed}**", ""]
    lines += [
        f"{len(bank.questions)} questions; passed at {bank.pass_ratio:.0%} correct.",
        "Answer in a file `quiz.yaml` at the root of your repository: one line per question, its id then your answer.",
        "",
    ]
    for number, question in enumerate(bank.questions, start=1):
        lines += _question_lines(number, question, seed)
    lines += ["## Your answers (`quiz.yaml`)", "", "```yaml"]
    lines += [f"{q.id}: {_blank(q)}" for q in bank.questions]
    lines += ["```", ""]
    return "\n".join(lines)


def _question_lines(number: int, question: Question, seed: str | None) -> list[str]:
    lines = [f"## {number}. `{question.id}` ({KIND_NOTES[question.kind]})", "", question.text, ""]
    for key in shuffled_keys(question, seed):
        lines.append(f"- **{key}**: {question.choices[key]}")
    if question.choices:
        lines.append("")
    return lines


def shuffled_keys(question: Question, seed: str | None) -> list[str]:
    """The choice keys in the order this student sees them: the bank's without a seed, else an order that
    depends only on the seed and the question (the same paper every time it is printed)."""
    keys = list(question.choices)
    if seed:
        random.Random(f"{seed}\x00{question.id}").shuffle(keys)
    return keys


def _blank(question: Question) -> str:
    return {"single": "", "multiple": "[]", "short": '""'}[question.kind]
