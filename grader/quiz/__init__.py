"""The module's theory quiz: question banks (YAML, JSON or Markdown), students' answers (a quiz.yaml or a
class CSV), grading at the bank's pass ratio, a printable paper, and the result document's `quiz` section."""

from .answers import load_answers
from .bank import check_sections, load_bank, resolve
from .classcsv import load_class_csv
from .grading import QuestionResult, QuizResult, grade_answers
from .model import Answers, Bank, Given, Question, QuizInputError
from .paper import render_paper
from .result import add_quiz, attach_quiz, quiz_error, quiz_section, submission_quiz
from .settings import QuizSettings, load_settings

__all__ = [
    "Answers",
    "Bank",
    "Given",
    "Question",
    "QuestionResult",
    "QuizInputError",
    "QuizResult",
    "QuizSettings",
    "add_quiz",
    "attach_quiz",
    "check_sections",
    "grade_answers",
    "load_answers",
    "load_bank",
    "load_class_csv",
    "load_settings",
    "quiz_error",
    "quiz_section",
    "render_paper",
    "resolve",
    "submission_quiz",
]
