"""Sharded batches: `--shard I/N` slices the class by name, `grader merge` joins the shards' results folders.
Pure logic over stored results first, then real shards of a small class against the unsharded batch (slow)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, SUBMISSIONS
from test_batch import APPS, RUBRIC

from grader import batch
from grader.batch import BatchOptions, SubmissionDir
from grader.cli import main
from grader.errors import UsageError

RESULTS = ROOT / "tests" / "results"


def _doc(name: str, who: str) -> dict:
    doc = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
    doc["submission"] = {**doc["submission"], "name": who}
    return doc


def _store(out: Path, name: str, doc: dict) -> None:
    (out / name).mkdir(parents=True, exist_ok=True)
    batch.write_submission(out / name, doc, batch.grading_settings(BatchOptions(out=out)))


# --------------------------------------------------------------------------------------------- shards


def test_shards_are_disjoint_even_and_cover_the_class() -> None:
    subs = [SubmissionDir(name, Path(name)) for name in ("eve", "bob", "dan", "alice", "carol")]
    slices = [batch.in_shard(subs, (i, 3)) for i in (1, 2, 3)]
    assert [[s.name for s in part] for part in slices] == [["alice", "dan"], ["bob", "eve"], ["carol"]]
    assert batch.in_shard(list(reversed(subs)), (2, 3)) == slices[1]  # by name, whatever the listing order
    assert batch.in_shard(subs, None) == subs


@pytest.mark.parametrize("text, expected", [("1/2", (1, 2)), (" 3 / 3 ", (3, 3))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert batch.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        batch.parse_shard(text)


def test_the_plan_of_a_shard_says_so(tmp_path: Path) -> None:
    for name in ("alice", "bob", "carol"):
        (tmp_path / "subs" / name).mkdir(parents=True)
    the_plan = batch.plan(tmp_path / "subs", BatchOptions(out=tmp_path / "out", shard=(2, 2)))
    assert [s.name for s in the_plan.to_grade] == ["bob"]
    assert "shard 2/2: 1 of 3 submissions" in the_plan.notes


# --------------------------------------------------------------------------------------------- merge


def test_merge_joins_the_shards_and_signs_the_copies(tmp_path: Path) -> None:
    _store(tmp_path / "s1", "alice", _doc("graded", "alice"))
    _store(tmp_path / "s2", "bob", _doc("error", "bob"))
    result = CliRunner().invoke(main, ["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out",
                                       str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    assert "merged 2 submission(s) from 2 folder(s)" in result.output
    assert [name for name, _ in batch.collect_results(tmp_path / "all")] == ["alice", "bob"]  # signed here
    with (tmp_path / "all" / "gradebook.csv").open(encoding="utf-8") as fh:
        assert [r["name"] for r in csv.DictReader(fh)] == ["alice", "bob"]
    assert (tmp_path / "all" / "index.html").is_file() and (tmp_path / "all" / "alice" / "report.html").is_file()


def test_a_submission_in_two_shards_is_an_error(tmp_path: Path) -> None:
    _store(tmp_path / "s1", "alice", _doc("graded", "alice"))
    _store(tmp_path / "s2", "alice", _doc("graded", "alice"))
    result = CliRunner().invoke(main, ["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out",
                                       str(tmp_path / "all")])
    assert result.exit_code == 2 and "alice is in two shards" in result.output


def test_an_out_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    _store(tmp_path / "s1", "alice", _doc("graded", "alice"))
    (tmp_path / "all").write_text("x")
    result = CliRunner().invoke(main, ["merge", str(tmp_path / "s1"), "--out", str(tmp_path / "all")])
    assert result.exit_code == 2 and result.output == f"grader: error: --out '{tmp_path / 'all'}' is a file, not a folder\n"


def test_an_unverified_result_is_left_out_unless_the_shards_are_trusted(tmp_path: Path) -> None:
    _store(tmp_path / "s1", "alice", _doc("graded", "alice"))
    forged = tmp_path / "s1" / "alice" / "result.json"
    doc = json.loads(forged.read_text())
    doc["grade"] = "S"
    forged.write_text(json.dumps(doc))  # as another machine's key (or a forger) would leave it for this one
    summary = batch.merge([tmp_path / "s1"], tmp_path / "all")
    assert summary.merged == [] and summary.untrusted == ["s1/alice"]
    summary = batch.merge([tmp_path / "s1"], tmp_path / "trusted", trust_shards=True)
    assert summary.merged == ["alice"]
    assert batch.collect_results(tmp_path / "trusted")[0][1]["grade"] == "S"


# --------------------------------------------------------------------------------------------- end to end


def _gradebook(out: Path) -> list[dict[str, str]]:
    with (out / "gradebook.csv").open(encoding="utf-8") as fh:
        return [{k: v for k, v in row.items() if k != "duration_s"} for row in csv.DictReader(fh)]


def _verdicts(out: Path) -> dict[str, object]:
    found = {}
    for path in sorted(out.glob("*/result.json")):
        doc = json.loads(path.read_text())
        found[path.parent.name] = (doc["status"], doc["grade"], doc["score"], doc["submission"],
                                   [(c["id"], c["outcome"], c["points"]) for c in doc["checks"]])
    return found


@pytest.mark.slow
def test_two_shards_merged_equal_the_unsharded_batch(tmp_path: Path) -> None:
    subs = tmp_path / "submissions"
    subs.mkdir()
    shutil.copytree(SUBMISSIONS / "reference", subs / "alice")
    (subs / "bob").mkdir()
    shutil.copy(APPS / "import_error" / "main.py", subs / "bob" / "main.py")
    (subs / "carol").mkdir()
    (subs / "carol" / "README.md").write_text("no code\n")
    (tmp_path / "rubric.toml").write_text(RUBRIC)

    def run(out: Path, *extra: str) -> None:
        argv = [sys.executable, "-m", "grader", "batch", "--runtime", "local", str(subs), "--out", str(out), "--env", "current",
                "--redis", "local", "--jobs", "2", "--only", "cache.*", "--rubric", str(tmp_path / "rubric.toml"),
                *extra]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=280,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    run(tmp_path / "whole")
    run(tmp_path / "s1", "--shard", "1/2")
    run(tmp_path / "s2", "--shard", "2/2")
    assert {p.parent.name for p in (tmp_path / "s1").glob("*/result.json")} == {"alice", "carol"}
    assert {p.parent.name for p in (tmp_path / "s2").glob("*/result.json")} == {"bob"}
    merged = CliRunner().invoke(main, ["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out",
                                       str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    assert _gradebook(tmp_path / "merged") == _gradebook(tmp_path / "whole")
    assert _verdicts(tmp_path / "merged") == _verdicts(tmp_path / "whole")
