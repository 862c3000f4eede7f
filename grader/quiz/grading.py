"""Grading one student's answers against a bank: one point per question answered exactly right (a
multiple-choice answer must name every right choice and no other), passed at the bank's pass_ratio."""

from __future__ import annotations

from dataclasses import dataclass

from .model import Answers, Bank, Given, Question


@dataclass(frozen=True)
class QuestionResult:
    question: Question
    given: Given
    correct: bool

    @property
    def given_value(self) -> str | list[str] | None:
        """What the student answered, as the result document stores it (None when unanswered)."""
        if self.given.empty:
            return None
        if self.question.kind == "short":
            return self.given.text
        if self.question.kind == "single":
            return self.given.keys[0]
        return list(self.given.keys)


@dataclass(frozen=True)
class QuizResult:
    bank: Bank
    student: str
    questions: list[QuestionResult]

    @property
    def correct(self) -> int:
        return sum(1 for q in self.questions if q.correct)

    @property
    def total(self) -> int:
        return len(self.questions)

    @property
    def ratio(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def passed(self) -> bool:
        # Compared on counts, not on a rounded float: 12 of 15 is exactly 0.8 and passes at 0.8.
        return self.correct >= self.bank.pass_ratio * self.total - 1e-9

    @property
    def answered(self) -> int:
        return sum(1 for q in self.questions if not q.given.empty)


def grade_answers(bank: Bank, answers: Answers) -> QuizResult:
    results = []
    for question in bank.questions:
        given = answers.given.get(question.id, Given())
        results.append(QuestionResult(question, given, question.is_correct(given)))
    return QuizResult(bank, answers.student, results)
