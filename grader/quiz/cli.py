"""`grader quiz`: grade, print and check the module's theory quiz.

Exit codes: 0 done (for `grade` of one student: the quiz is passed), 1 one student's quiz is below the bank's
pass ratio, 2 usage error or a broken bank, answers file or class CSV (the message names the file, the
question and the problem). A class CSV exits 0 once every row is graded, however many passed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from grader.cli_support import fail, write_output
from grader.errors import GraderError
from grader.rubric import Rubric

from .answers import load_answers
from .bank import load_bank
from .classcsv import load_class_csv
from .model import Bank, QuizInputError
from .paper import render_paper
from .result import find_answers, quiz_section

EXIT_OK, EXIT_BELOW = 0, 1


def _rubric(name: str) -> Rubric:
    from grader import rubric as rubrics
    from grader.checking import load_checks

    return rubrics.load(name, set(load_checks()))


@click.group("quiz", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def quiz() -> None:
    """The module's theory quiz: grade answers, print a student's paper, check a bank.

    BANK is a shipped bank's name (redis-module) or a path to a .yaml, .json or .md bank (docs/quiz.md).
    """


RUBRIC_OPTION = click.option("--rubric", default="redis-module", show_default=True,
                             help="Rubric whose [sections] the bank's sections must name (and link to).")


@quiz.command("grade")
@click.argument("bank_name", metavar="BANK")
@click.argument("answers_path", metavar="ANSWERS", type=click.Path(path_type=Path))
@RUBRIC_OPTION
@click.option("--docs-url", metavar="URL", help="Base URL of the textbook for remediation links.")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write the quiz section here (a class CSV: a list, one per student).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path),
              help="Class CSV only: write one row per student (score, passed, each question 1/0) here.")
@click.option("--color/--no-color", default=None, help="Colour the output (default: when it is a terminal).")
def grade_command(bank_name: str, answers_path: Path, rubric: str, docs_url: str | None, json_path: Path | None,
                  csv_path: Path | None, color: bool | None) -> None:
    """Grade ANSWERS against BANK: one student's quiz.yaml / .json (or a submission folder holding one), or a
    class CSV (student,<question id>,...)."""
    from grader.reporters.quiz import terminal_lines

    try:
        loaded_rubric = _rubric(rubric)
        bank = load_bank(bank_name, loaded_rubric)
        if answers_path.is_dir():
            found = find_answers(answers_path)
            if found is None:
                raise QuizInputError(answers_path, "no quiz.yaml, quiz.yml or quiz.json in this folder")
            answers_path = found
        if answers_path.suffix.lower() == ".csv":
            sections = [quiz_section(bank, a, loaded_rubric, docs_url) for a in load_class_csv(answers_path, bank)]
        else:
            sections = [quiz_section(bank, load_answers(answers_path, bank), loaded_rubric, docs_url)]
    except GraderError as exc:
        fail(exc)
    is_class = answers_path.suffix.lower() == ".csv"
    if json_path is not None:
        write_output(json_path, json.dumps(sections if is_class else sections[0], indent=2, ensure_ascii=False) + "\n")
    if is_class:
        if csv_path is not None:
            write_output(csv_path, class_csv(bank, sections))
        click.echo(class_table(sections))
        sys.exit(EXIT_OK)
    use_color = sys.stdout.isatty() if color is None else color

    def style(text: str, **kwargs: Any) -> str:
        return click.style(text, **kwargs) if use_color else text

    click.echo("\n".join(terminal_lines({"quiz": sections[0]}, style)[1:]))
    sys.exit(EXIT_OK if sections[0]["passed"] else EXIT_BELOW)


def class_table(sections: list[dict[str, Any]]) -> str:
    width = max(len(s["student"]) for s in sections)
    lines = [f"{'student':<{width}}  correct  score  passed"]
    for s in sections:
        correct = f"{s['correct']}/{s['total']}"
        lines.append(f"{s['student']:<{width}}  {correct:>7}  {s['score']:>5g}  {'yes' if s['passed'] else 'no'}")
    passed = sum(1 for s in sections if s["passed"])
    lines.append(f"{passed} of {len(sections)} passed")
    return "\n".join(lines)


def class_csv(bank: Bank, sections: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", "correct", "total", "score", "passed", *bank.ids])
    for s in sections:
        marks = {q["id"]: "1" if q["correct"] else "0" for q in s["questions"]}
        writer.writerow([s["student"], s["correct"], s["total"], f"{s['score']:g}", "yes" if s["passed"] else "no",
                         *(marks[qid] for qid in bank.ids)])
    return out.getvalue()


@quiz.command("paper")
@click.argument("bank_name", metavar="BANK")
@click.option("--seed", metavar="STUDENT", help="Shuffle the choices for this student (the same order every time).")
@click.option("--out", "out_path", type=click.Path(path_type=Path), help="Write the paper here instead of printing it.")
def paper_command(bank_name: str, seed: str | None, out_path: Path | None) -> None:
    """Print BANK as a student's paper in Markdown, without the answers."""
    try:
        bank = load_bank(bank_name)
    except GraderError as exc:
        fail(exc)
    text = render_paper(bank, seed)
    if out_path is None:
        click.echo(text, nl=False)
    else:
        write_output(out_path, text)


@quiz.command("check")
@click.argument("bank_name", metavar="BANK")
@RUBRIC_OPTION
def check_command(bank_name: str, rubric: str) -> None:
    """Validate BANK: its structure, every answer key, every regular expression, every section id."""
    try:
        bank = load_bank(bank_name, _rubric(rubric))
    except GraderError as exc:
        fail(exc)
    kinds = Counter(q.kind for q in bank.questions)
    need = math.ceil(round(bank.pass_ratio * len(bank.questions), 9))  # 0.8 * 15 is 12.000000000000002
    click.echo(f"{bank.source}: ok: {len(bank.questions)} questions "
               f"({', '.join(f'{n} {k}' for k, n in kinds.items())}); passed with {need} correct "
               f"({bank.pass_ratio:.0%})")
