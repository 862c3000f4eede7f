"""The quiz section of a result document in every format: terminal lines, a JUnit testsuite "quiz" with one
testcase per question, Gradescope tests, the gradebook's quiz_score / quiz_passed columns, and the view the
HTML and Markdown partials (templates/quiz.*.j2) render.

Like the other reporters this reads only the document, defensively: a section from another grader version
or edited by hand renders as something instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from ._common import Link, _links, as_number, clean_text, fmt_num, read_result

LINE_WIDTH = 160


@dataclass
class QuizQuestion:
    id: str
    text: str
    kind: str
    given: str  # "" when unanswered
    correct: bool
    remediation: list[Link]

    @property
    def given_text(self) -> str:
        return self.given or "(no answer)"


@dataclass
class QuizView:
    status: str  # graded | error | missing
    error: str
    bank: str
    title: str
    answers: str
    correct: int | None
    total: int | None
    score: float | None  # out of 100
    pass_ratio: float | None
    passed: bool | None
    counts: bool
    points: float | None
    max_points: float | None
    questions: list[QuizQuestion]

    @property
    def graded(self) -> bool:
        return self.status == "graded"

    @property
    def wrong(self) -> list[QuizQuestion]:
        return [q for q in self.questions if not q.correct]

    @property
    def verdict(self) -> str:
        if not self.graded:
            return "missing" if self.status == "missing" else "not graded"
        return "passed" if self.passed else "not passed"

    @property
    def summary(self) -> str:
        """"12/15 correct (80%), passed at 80%" or why there is no score."""
        if not self.graded:
            return f"{self.verdict}: {self.error}" if self.error else self.verdict
        threshold = f" at {fmt_num(100 * self.pass_ratio)}%" if self.pass_ratio is not None else ""
        return f"{self.correct}/{self.total} correct ({fmt_num(self.score)}%), {self.verdict}{threshold}"

    @property
    def points_text(self) -> str:
        """"8/10 points" when the quiz counts towards the grade, else "" (it is reported beside it)."""
        if not self.counts or self.max_points is None:
            return ""
        return f"{fmt_num(self.points or 0)}/{fmt_num(self.max_points)} points"


def _given(value: Any) -> str:
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, list):
        return ", ".join(clean_text(v) for v in value)
    return clean_text(value)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _question(raw: Any) -> QuizQuestion:
    raw = raw if isinstance(raw, dict) else {}
    return QuizQuestion(
        id=clean_text(raw.get("id") or "unnamed"),
        text=clean_text(raw.get("text")),
        kind=clean_text(raw.get("kind")),
        given=_given(raw.get("given")),
        correct=raw.get("correct") is True,
        remediation=_links(raw.get("remediation")),
    )


def read_quiz(result: Any) -> QuizView | None:
    """The document's quiz section, or None when it has none."""
    raw = result.get("quiz") if isinstance(result, dict) else None
    if not isinstance(raw, dict):
        return None
    status = clean_text(raw.get("status")).lower()
    questions = raw.get("questions") if isinstance(raw.get("questions"), list) else []
    return QuizView(
        status=status if status in ("graded", "missing") else "error",
        error=" ".join(clean_text(raw.get("error")).split()),
        bank=clean_text(raw.get("bank")),
        title=clean_text(raw.get("title") or raw.get("bank") or "quiz"),
        answers=clean_text(raw.get("answers")),
        correct=_int_or_none(raw.get("correct")),
        total=_int_or_none(raw.get("total")),
        score=_number_or_none(raw.get("score")),
        pass_ratio=_number_or_none(raw.get("pass_ratio")),
        passed=raw.get("passed") if isinstance(raw.get("passed"), bool) else None,
        counts=raw.get("counts") is True,
        points=_number_or_none(raw.get("points")),
        max_points=_number_or_none(raw.get("max_points")),
        questions=[_question(q) for q in questions],
    )


def template_context(result: dict[str, Any]) -> dict[str, Any]:
    """What report.*.j2 need besides the report: `quiz` for their quiz partial."""
    return {"quiz": read_quiz(result)}


# --- terminal ----------------------------------------------------------------------------------------------


def terminal_lines(result: dict[str, Any], style: Any) -> list[str]:
    """The quiz block of the terminal report (no lines without a quiz); `style` is click.style or a no-op."""
    quiz = read_quiz(result)
    if quiz is None:
        return []
    mark_colour = "green" if quiz.passed else ("yellow" if quiz.status == "error" else "red")
    points = f"  {quiz.points_text}" if quiz.points_text else ("  (not counted in the grade)" if quiz.graded else "")
    summary = style(quiz.summary, fg=mark_colour, bold=True)
    lines = ["", style("quiz", bold=True) + f"  {quiz.title}", f"  {summary}{points}"]
    width = max((len(q.id) for q in quiz.questions), default=0)
    for question in quiz.questions:
        mark = style("✓", fg="green", bold=True) if question.correct else style("✗", fg="red", bold=True)
        text = "" if question.correct else _clip(question.text, 100)
        lines.append(f"  {mark} {question.id:<{width}}  {text}".rstrip())
        if question.correct:
            continue
        lines.append(f"      {style('given:', fg='red')} {_clip(question.given_text, LINE_WIDTH)}")
        for link in question.remediation:
            lines.append(f"      {style('learn:', fg='cyan')} {link.title}" + (f"  {link.url}" if link.url else ""))
    return lines


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- JUnit -------------------------------------------------------------------------------------------------


def add_junit_suite(xml: JUnitXml, result: dict[str, Any], suite: TestSuite) -> None:
    """Fill `suite` (made by the JUnit reporter, with its properties) with one testcase per question and add
    it to `xml`; nothing when the document has no quiz."""
    quiz = read_quiz(result)
    if quiz is None:
        return
    suite.add_property("quiz", quiz.summary)
    if not quiz.graded:
        case = TestCase(name="quiz.answers", classname="quiz")
        kind = Failure if quiz.status == "missing" else Error
        case.result = [kind(message=quiz.error or quiz.verdict, type_=f"quiz-{quiz.status}")]
        suite.add_testcase(case)
    for question in quiz.questions:
        suite.add_testcase(_junit_case(question))
    xml.add_testsuite(suite)


def _junit_case(question: QuizQuestion) -> TestCase:
    case = TestCase(name=question.id, classname="quiz")
    if question.correct:
        return case
    failure = Failure(message=f"given: {question.given_text}", type_="wrong-answer")
    lines = [f"question: {question.text}", f"given: {question.given_text}"]
    lines += [f"learn: {link.title}" + (f" {link.url}" if link.url else "") for link in question.remediation]
    failure.text = "\n".join(lines)
    case.result = [failure]
    return case


# --- Gradescope --------------------------------------------------------------------------------------------


def gradescope_tests(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A summary test for the quiz (carrying its points when the quiz counts, on the same scale as the
    checks' tests) and one test per question (0 points each: the summary carries them)."""
    quiz = read_quiz(result)
    if quiz is None:
        return []
    report = read_result(result)
    factor = report.max_score / report.max_points if report.max_points else 0.0
    counted = quiz.counts and quiz.max_points is not None and report.graded
    lines = [quiz.summary]
    if quiz.wrong:
        lines += ["", "Read again:"]
        lines += [f"  - {q.id}: " + "; ".join(link.title for link in q.remediation) for q in quiz.wrong]
    tests = [{
        "name": f"quiz: {quiz.title}",
        "score": round(as_number(quiz.points) * factor, 2) if counted else 0.0,
        "max_score": round(as_number(quiz.max_points) * factor, 2) if counted else 0.0,
        "status": "passed" if quiz.passed else "failed",
        "output": "\n".join(lines),
        "tags": ["quiz"],
        "visibility": "visible",
    }]
    tests += [_gradescope_question(q) for q in quiz.questions]
    return tests


def _gradescope_question(question: QuizQuestion) -> dict[str, Any]:
    output = [question.text, "", f"given: {question.given_text}"]
    if not question.correct and question.remediation:
        output += ["", "Learn more:"]
        output += [f"  - {link.title}" + (f": {link.url}" if link.url else "") for link in question.remediation]
    return {
        "name": f"quiz {question.id}",
        "score": 0.0,
        "max_score": 0.0,
        "status": "passed" if question.correct else "failed",
        "output": "\n".join(output),
        "tags": ["quiz"],
        "visibility": "visible",
    }


# --- gradebook ---------------------------------------------------------------------------------------------

GRADEBOOK_COLUMNS = ["quiz_score", "quiz_passed"]


def add_gradebook_columns(results: list[dict[str, Any]], header: list[str], rows: list[dict[str, str]]) -> None:
    """quiz_score (out of 100) and quiz_passed (yes / no / error) after max_score, only when some result has
    a quiz; `rows` are in the order of `results`."""
    quizzes = [read_quiz(r) for r in results]
    if not any(quizzes):
        return
    at = header.index("max_score") + 1 if "max_score" in header else len(header)
    header[at:at] = GRADEBOOK_COLUMNS
    for row, quiz in zip(rows, quizzes):
        if quiz is None:
            continue
        row["quiz_score"] = fmt_num(quiz.score)
        row["quiz_passed"] = "error" if quiz.status == "error" else ("yes" if quiz.passed else "no")
