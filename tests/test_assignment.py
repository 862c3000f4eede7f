"""The published assignment is generated from the rubric and the checks, and README.md shows exactly it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from grader import assignment as published
from grader import rubric as rubrics
from grader.cli import main
from grader.registry import Registry

ROOT = Path(__file__).resolve().parent.parent


def _built() -> tuple[published.Assignment, rubrics.Rubric]:
    known = Registry.load(plugins=False)
    rubric = rubrics.load("redis-module", known)
    return published.build(rubric, known), rubric


def test_every_rubric_check_is_in_the_assignment():
    built, rubric = _built()
    text = published.markdown(built)
    for entry in rubric.entries:
        assert f"`{entry.check_id}`" in text, entry.check_id
    assert sum(len(r) for r in built.levels.values()) == len(rubric.entries)
    assert built.points("basic") + built.points("advanced") == sum(e.points for e in rubric.entries)


def test_readme_block_is_the_generated_assignment():
    built, _ = _built()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert published.readme_block(readme) == published.markdown(built, heading=False), (
        "README.md's assignment block is stale: run `grader assignment --readme README.md`")


def test_settings_fill_the_requirement():
    built, rubric = _built()
    pipeline = next(r for r in built.levels["advanced"] if r.check_id == "leaderboard.pipeline")
    seeds = rubric.entry("leaderboard.pipeline").options["seed_modules"]  # type: ignore[union-attr]
    assert ", ".join(seeds) in pipeline.text and "{seed_modules}" not in pipeline.text
    invalidation = next(r for r in built.levels["advanced"] if r.check_id == "cache.invalidation")
    assert "/products/{id}" in invalidation.text  # a brace the settings do not name stays as written


def test_html_escapes_and_marks_code():
    built, _ = _built()
    page = published.html(built)
    assert "<code>REDIS_URL</code>" in page and "<code>cache.populates</code>" in page
    assert "<ip>" not in page  # text from a title is escaped, never markup


def test_readme_block_replacement_roundtrip():
    readme = f"intro\n{published.README_START}\nold\n{published.README_END}\noutro\n"
    updated = published.with_readme_block(readme, "new text\n")
    assert published.readme_block(updated) == "new text\n"
    assert updated.startswith("intro\n") and updated.endswith("outro\n")


def test_cli_prints_markdown_and_writes_html(tmp_path):
    page = tmp_path / "assignment.html"
    result = CliRunner().invoke(main, ["assignment", "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# ") and "`leaderboard.top`" in result.output
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("args, message", [
    (["--rubric", "nosuch"], "grader: error: unknown rubric 'nosuch'"),
    (["--html", "a-file/assignment.html"], "grader: error: cannot write a-file/assignment.html: a-file is not a folder"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    result = CliRunner().invoke(main, ["assignment", *args])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith(message) and "Traceback" not in result.output
