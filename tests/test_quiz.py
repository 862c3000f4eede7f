"""The theory quiz: the shipped bank, grading at the pass ratio, broken banks, answers and class CSVs (exit 2
naming the file, the question and the problem), the Markdown bank and the student's paper."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from quiz_kit import answers_with_wrong, key_answers, run, write_yaml

from grader import rubric as rubrics
from grader.quiz import (
    Answers,
    Bank,
    Given,
    QuizInputError,
    grade_answers,
    load_answers,
    load_bank,
    load_class_csv,
    quiz_section,
    render_paper,
)
from grader.quiz.files import ANSWERS_MAX_BYTES
from grader.quiz.paper import shuffled_keys
from grader.resources import quizzes_dir

pytest_plugins = ("quiz_kit",)  # its fixtures: the shipped `rubric` and `bank`

MODULE_SECTIONS = {
    "R1.1", "R2.1", "R3.1", "R3.2", "R4.1", "R4.2", "RA1.4", "RA2.1", "RA2.2", "RA2.3", "RA3.1", "RA3.2",
    "RA5.1", "RA5.2", "RA4.1", "RA1.1",
}


# --- the shipped bank --------------------------------------------------------------------------------------


def test_shipped_bank_validates(bank: Bank) -> None:
    assert bank.source == quizzes_dir() / "redis-module.yaml"
    assert 10 <= len(bank.questions) <= 20 and len(bank.questions) == 15
    assert bank.pass_ratio == 0.8
    assert len(set(bank.ids)) == len(bank.ids)
    assert {q.kind for q in bank.questions} == {"single", "multiple", "short"}
    # Every part of the module the course teaches in theory is asked about.
    assert {s for q in bank.questions for s in q.sections} == MODULE_SECTIONS
    assert all(q.sections for q in bank.questions)
    result = run("check", "redis-module")
    assert result.exit_code == 0, result.output
    assert "15 questions" in result.output and "passed with 12 correct (80%)" in result.output


def test_answering_with_the_key_scores_100(bank: Bank, rubric: rubrics.Rubric, tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "quiz.yaml", key_answers(bank))
    section = quiz_section(bank, load_answers(path, bank), rubric)
    assert (section["correct"], section["total"], section["score"], section["passed"]) == (15, 15, 100.0, True)
    assert all(q["remediation"] == [] for q in section["questions"])
    result = run("grade", "redis-module", str(path))
    assert result.exit_code == 0, result.output
    assert "15/15 correct (100%), passed at 80%" in result.output


@pytest.mark.parametrize(("wrong", "passed", "exit_code"), [(3, True, 0), (4, False, 1)])
def test_pass_ratio(
    bank: Bank, rubric: rubrics.Rubric, tmp_path: Path, wrong: int, passed: bool, exit_code: int
) -> None:
    """12 of 15 right is 80 % and passes; 11 of 15 is 73 % and does not."""
    path = write_yaml(tmp_path / "answers.yaml", answers_with_wrong(bank, wrong))
    section = quiz_section(bank, load_answers(path, bank), rubric)
    assert section["correct"] == 15 - wrong and section["passed"] is passed
    assert section["score"] == round(100 * (15 - wrong) / 15, 2)
    result = run("grade", "redis-module", str(path), "--json", str(tmp_path / "out.json"))
    assert result.exit_code == exit_code, result.output
    saved = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert saved["passed"] is passed and saved["student"] == "answers"


def test_wrong_answers_link_the_rubric_sections(bank: Bank, rubric: rubrics.Rubric) -> None:
    answers = Answers("bob", {"ttl-setex": Given(keys=("a",))})
    section = quiz_section(bank, answers, rubric, docs_url="https://docs.example/redis/")
    ttl = next(q for q in section["questions"] if q["id"] == "ttl-setex")
    entry = rubrics.RubricEntry("x", 1, ("R2.1", "RA2.1"), "", {})
    assert ttl["given"] == "a" and ttl["correct"] is False
    assert ttl["remediation"] == rubric.remediation(entry, "https://docs.example/redis/")
    assert ttl["remediation"][0]["url"] == "https://docs.example/redis/r2-ttl#expiration"
    unanswered = next(q for q in section["questions"] if q["id"] == "incr-race")
    assert unanswered["given"] is None and unanswered["correct"] is False
    # A section the rubric lacks comes from the bank's own sections table.
    pubsub = next(q for q in section["questions"] if q["id"] == "pubsub-vs-queue")
    assert pubsub["remediation"][0]["title"].startswith("RA4.1 Pub/Sub")


@pytest.mark.parametrize(("question", "given", "correct"), [
    ("incrby", "incrby   VIEWS 5", True),
    ("incrby", "INCRBY views +5", True),
    ("incrby", "INCR views", False),
    ("sorted-set-top", "zrange leaderboard 0 2 REV withscores", True),
    ("sorted-set-top", "ZREVRANGE leaderboard 0 2 WITHSCORES", True),
    ("sorted-set-top", "ZRANGE leaderboard 0 2 WITHSCORES", False),
    ("sorted-set-top", "please ZREVRANGE leaderboard 0 2 WITHSCORES", False),  # a regex matches the whole answer
])
def test_short_answers(bank: Bank, question: str, given: str, correct: bool) -> None:
    q = bank.question(question)
    assert q is not None and q.is_correct(Given(text=given)) is correct


def test_multiple_choice_needs_exactly_the_right_set(bank: Bank) -> None:
    q = bank.question("cache-stampede")
    assert q is not None and q.answer == ("b", "c")
    assert q.is_correct(Given(keys=("c", "b")))
    assert not q.is_correct(Given(keys=("b",)))
    assert not q.is_correct(Given(keys=("a", "b", "c")))


def test_answer_forms_a_student_may_write(bank: Bank, tmp_path: Path) -> None:
    path = tmp_path / "quiz.yaml"
    path.write_text("cache-stampede: b, c\nttl-setex: [D]\nincrby: 'INCRBY views 5'\ncache-aside:\n", encoding="utf-8")
    answers = load_answers(path, bank)
    assert answers.student == tmp_path.name  # quiz.yaml is named after its folder
    result = grade_answers(bank, answers)
    marks = {r.question.id: r.correct for r in result.questions}
    assert marks["cache-stampede"] and marks["ttl-setex"] and marks["incrby"] and not marks["cache-aside"]
    assert result.answered == 3


# --- broken banks: exit 2 naming the file, the question and the problem -----------------------------------

GOOD_QUESTION = {"id": "q1", "text": "Вопрос?", "kind": "single", "choices": {"a": "да", "b": "нет"}, "answer": "a",
                 "sections": ["R1.1"]}


def bank_with(**changes: Any) -> dict[str, Any]:
    question = {**GOOD_QUESTION, **changes}
    return {"title": "Test", "questions": [{k: v for k, v in question.items() if v is not None}]}


MALFORMED_BANKS = [
    ("unknown kind", bank_with(kind="essay"), "q1", "'kind' must be one of single, multiple, short"),
    ("answer not a choice", bank_with(answer="e"), "q1", "answer 'e' is not one of its choices (a, b)"),
    ("single answered with a list", bank_with(answer=["a"]), "q1", "is one choice key, not a list"),
    ("multiple answered with one key", bank_with(kind="multiple", answer="a"), "q1", "non-empty list of choice keys"),
    ("short with choices", bank_with(kind="short", answer=["x"]), "q1", "a short question has no 'choices'"),
    ("bad regex", bank_with(kind="short", choices=None, answer=["/inc(r/"]), "q1", "not a valid regular expression"),
    ("missing text", bank_with(text=None), "q1", "'text' is missing or empty"),
    ("missing answer", bank_with(answer=None), "q1", "'answer' is missing"),
    ("one choice", bank_with(choices={"a": "да"}), "q1", "at least two choice keys"),
    ("typo in a key", bank_with(answers="a"), "q1", "unknown key(s) answers"),
    ("unknown section", bank_with(sections=["R9.9"]), "q1", "section 'R9.9' is neither in the [sections] of rubric"),
    ("bad id", bank_with(id="two words"), None, "question #1 needs an 'id'"),
    ("pass ratio as percent", {**bank_with(), "pass_ratio": 80}, None, "'pass_ratio' must be above 0 and at most 1"),
    ("no questions", {"title": "Test", "questions": []}, None, "'questions' is missing or not a non-empty list"),
    ("no title", {"questions": bank_with()["questions"]}, None, "'title' is missing"),
    ("not a mapping", ["a", "b"], None, "a bank is a mapping"),
]


@pytest.mark.parametrize(("case", "data", "question", "problem"), MALFORMED_BANKS, ids=[c[0] for c in MALFORMED_BANKS])
def test_malformed_bank_exits_2(tmp_path: Path, case: str, data: Any, question: str | None, problem: str) -> None:
    path = write_yaml(tmp_path / "bank.yaml", data)
    result = run("check", str(path))
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and problem in result.output
    if question:
        assert f"question '{question}'" in result.output


def test_duplicate_ids_and_yaml_booleans(tmp_path: Path) -> None:
    data = {"title": "T", "questions": [GOOD_QUESTION, GOOD_QUESTION]}
    result = run("check", str(write_yaml(tmp_path / "dup.yaml", data)))
    assert result.exit_code == 2 and "question 'q1': the id is used by more than one question" in result.output
    path = tmp_path / "bool.yaml"
    question = "{id: q1, text: 'Да?', kind: single, choices: {yes: да, no: нет}, answer: yes}"
    path.write_text(f"title: T\nquestions:\n  - {question}\n", encoding="utf-8")
    result = run("check", str(path))
    assert result.exit_code == 2 and "quote keys like yes/no/on/off" in result.output


def test_unreadable_banks_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("title: [unclosed\n", encoding="utf-8")
    result = run("check", str(broken))
    assert result.exit_code == 2 and f"{broken}: not valid YAML" in result.output and "line" in result.output
    result = run("check", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2 and "quiz bank not found" in result.output
    result = run("check", "no-such-bank")
    assert result.exit_code == 2 and "no such quiz bank (shipped: redis-module" in result.output


def test_json_bank_is_the_same_structure(tmp_path: Path, bank: Bank) -> None:
    data = yaml.safe_load((quizzes_dir() / "redis-module.yaml").read_text(encoding="utf-8"))
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert load_bank(path).questions == bank.questions


MARKDOWN_BANK = """\
# Мини-квиз
Pass ratio: 50%

## ttl
Sections: R2.1, RA2.1

Какая команда задаёт значение и TTL одной командой?

- [ ] a: SET + EXPIRE
- [x] b: SETEX

## many
Sections: RA2.2

Что защищает от stampede?
Отметьте все.

- [x] a: блокировка
- [ ] b: FLUSHALL
- [x] c: раннее истечение

## cmd
Sections: R3.1
Answer: INCR
Answer: /incr\\s+\\S+/

Какой командой атомарно увеличить счётчик?
"""


def test_markdown_bank_maps_onto_the_same_model(tmp_path: Path, rubric: rubrics.Rubric) -> None:
    path = tmp_path / "mini.md"
    path.write_text(MARKDOWN_BANK, encoding="utf-8")
    md = load_bank(path, rubric)
    assert (md.title, md.pass_ratio, md.ids) == ("Мини-квиз", 0.5, ["ttl", "many", "cmd"])
    ttl, many, cmd = md.questions
    assert (ttl.kind, ttl.answer, ttl.sections) == ("single", ("b",), ("R2.1", "RA2.1"))
    assert ttl.choices == {"a": "SET + EXPIRE", "b": "SETEX"}
    assert (many.kind, many.answer, many.text) == ("multiple", ("a", "c"), "Что защищает от stampede?\nОтметьте все.")
    assert cmd.kind == "short" and cmd.is_correct(Given(text="incr views")) and not cmd.is_correct(Given(text="get"))
    assert run("check", str(path)).exit_code == 0
    path.write_text(MARKDOWN_BANK.replace("- [x] b: SETEX", "- [ ] b: SETEX"), encoding="utf-8")
    result = run("check", str(path))
    assert result.exit_code == 2 and "question 'ttl': 'answer' is missing" in result.output


# --- broken answers files ----------------------------------------------------------------------------------


BROKEN_ANSWERS = [
    ("unknown question", "ttl: a\n", "question 'ttl': not a question of the bank 'redis-module'"),
    ("unknown choice", "ttl-setex: e\n", "question 'ttl-setex': 'e' is not one of its choices (a, b, c, d)"),
    ("two keys for a single choice", "ttl-setex: [a, b]\n",
     "question 'ttl-setex': the answer of a single-choice question is one choice key"),
    ("a boolean", "incrby: no\n", "question 'incrby': the answer is a YAML boolean"),
    ("a list for a short answer", "incrby: [a, b]\n", "question 'incrby': the answer of a short question is one text"),
    ("not a mapping", "- a\n- b\n", "answers are a mapping of question id -> answer"),
    ("not YAML", "ttl-setex: [a\n", "not valid YAML"),
    ("not UTF-8", b"ttl-setex: \xff\n", "not UTF-8 text"),
]


@pytest.mark.parametrize(("case", "content", "problem"), BROKEN_ANSWERS, ids=[c[0] for c in BROKEN_ANSWERS])
def test_broken_answers_exit_2(tmp_path: Path, case: str, content: str | bytes, problem: str) -> None:
    path = tmp_path / "answers.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    result = run("grade", "redis-module", str(path))
    assert result.exit_code == 2, result.output
    assert f"{path}: " in result.output and problem in result.output


def test_answers_file_size_is_capped(tmp_path: Path, bank: Bank) -> None:
    path = tmp_path / "quiz.yaml"
    path.write_text("incrby: '" + "x" * ANSWERS_MAX_BYTES + "'\n", encoding="utf-8")
    with pytest.raises(QuizInputError, match="too large"):
        load_answers(path, bank)
    path.write_text("incrby: '" + "x" * 5000 + "'\n", encoding="utf-8")
    with pytest.raises(QuizInputError, match="question 'incrby': the answer is longer than 1000 characters"):
        load_answers(path, bank)


def test_yaml_aliases_cannot_blow_up_a_message(bank: Bank, tmp_path: Path) -> None:
    """Nested aliases make a few hundred bytes stand for 10^9 items; the error names the type, not the text."""
    lines = ["cache-stampede:", "  - &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    path = tmp_path / "quiz.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(QuizInputError, match="question 'cache-stampede': a list is not one of its choices"):
        load_answers(path, bank)


# --- the class CSV -----------------------------------------------------------------------------------------


def class_csv_text(bank: Bank) -> str:
    """A form export: a timestamp column, choice texts instead of keys, multiple choices joined with ", "."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Timestamp", "student", *bank.ids])
    key = key_answers(bank)

    def as_text(qid: str, value: Any) -> str:
        q = bank.question(qid)
        assert q is not None
        if q.kind == "short":
            return value
        keys = value if isinstance(value, list) else [value]
        return ", ".join(q.choices[k] for k in keys)

    writer.writerow(["2026-05-01 10:00", "alice", *(as_text(qid, key[qid]) for qid in bank.ids)])
    bob = answers_with_wrong(bank, 4)
    cells = ("; ".join(bob[qid]) if isinstance(bob[qid], list) else bob[qid] for qid in bank.ids)
    writer.writerow(["2026-05-01 10:05", "bob", *cells])
    writer.writerow(["2026-05-01 10:07", "carol", *([""] * len(bank.ids))])
    return out.getvalue()


def test_class_csv(bank: Bank, tmp_path: Path) -> None:
    path = tmp_path / "class.csv"
    path.write_text("\ufeff" + class_csv_text(bank), encoding="utf-8")  # a spreadsheet's BOM
    students = load_class_csv(path, bank)
    scores = {a.student: grade_answers(bank, a) for a in students}
    assert {name: (r.correct, r.passed) for name, r in scores.items()} == {
        "alice": (15, True), "bob": (11, False), "carol": (0, False)}
    result = run("grade", "redis-module", str(path), "--json", str(tmp_path / "class.json"),
                 "--csv", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    assert "alice" in result.output and "1 of 3 passed" in result.output
    saved = json.loads((tmp_path / "class.json").read_text(encoding="utf-8"))
    assert [s["student"] for s in saved] == ["alice", "bob", "carol"]
    rows = list(csv.DictReader((tmp_path / "out.csv").open(encoding="utf-8")))
    assert rows[1]["student"] == "bob" and rows[1]["passed"] == "no" and rows[1]["correct"] == "11"
    assert rows[0]["ttl-setex"] == "1" and rows[1]["in-memory-single-thread"] == "0"


@pytest.mark.parametrize(("content", "problem"), [
    ("name,ttl-setex\nalice,a\n", "the header has no 'student' column"),
    ("student,ttl\nalice,a\n", "column 'ttl' is not a question of the bank"),
    ("student,ttl-setex\nalice,a\nalice,b\n", "line 3: student 'alice' has a second row"),
    ("student,ttl-setex\nalice,nonsense\n",
     "line 2 (student 'alice'): question 'ttl-setex': 'nonsense' is not one of its choices"),
    ("student,ttl-setex\n", "no student rows"),
])
def test_broken_class_csv_exits_2(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "class.csv"
    path.write_text(content, encoding="utf-8")
    result = run("grade", "redis-module", str(path))
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and problem in result.output


# --- the paper ---------------------------------------------------------------------------------------------


def test_paper_has_no_answers(bank: Bank) -> None:
    result = run("paper", "redis-module")
    assert result.exit_code == 0
    paper = result.output
    assert paper.startswith("# Redis: кэш, счётчики и Lua — теория\n")
    for q in bank.questions:
        assert f"`{q.id}`" in paper and q.text.split()[0] in paper
    assert "INCRBY views 5" not in paper and "ZREVRANGE leaderboard" not in paper and "answer:" not in paper
    assert "```yaml\nin-memory-single-thread: []\nttl-setex: \n" in paper


def test_seeded_papers_shuffle_choices_without_changing_grading(
    bank: Bank, rubric: rubrics.Rubric, tmp_path: Path
) -> None:
    alice, again, bob = render_paper(bank, "alice"), render_paper(bank, "alice"), render_paper(bank, "bob")
    assert alice == again and alice != bob
    orders = {seed: [shuffled_keys(q, seed) for q in bank.questions] for seed in ("alice", "bob")}
    assert orders["alice"] != orders["bob"]
    assert all(sorted(keys) == sorted(q.choices) for keys, q in zip(orders["alice"], bank.questions))
    # Keys stay with their texts, so the key grades every paper alike.
    q = bank.questions[1]
    line = f"- **{q.answer[0]}**: {q.choices[q.answer[0]]}"
    assert line in alice and line in bob
    path = write_yaml(tmp_path / "quiz.yaml", key_answers(bank))
    assert quiz_section(bank, load_answers(path, bank), rubric)["passed"] is True


def test_paper_and_grade_from_the_command_line(bank: Bank, tmp_path: Path) -> None:
    result = run("paper", "redis-module", "--seed", "alice", "--out", str(tmp_path / "paper" / "alice.md"))
    assert result.exit_code == 0 and result.output == ""
    assert (tmp_path / "paper" / "alice.md").read_text(encoding="utf-8") == render_paper(bank, "alice")
    submission = tmp_path / "alice"
    submission.mkdir()
    result = run("grade", "redis-module", str(submission))
    assert result.exit_code == 2 and "no quiz.yaml, quiz.yml or quiz.json in this folder" in result.output
    (submission / "quiz.json").write_text(json.dumps(key_answers(bank)), encoding="utf-8")
    result = run("grade", "redis-module", str(submission), "--json", str(tmp_path / "alice.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "alice.json").read_text(encoding="utf-8"))["student"] == "alice"


def test_quiz_group_help() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert all(name in result.output for name in ("grade", "paper", "check"))
