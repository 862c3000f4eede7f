"""`grader batch`: planning and the overview as pure logic, then whole batches with real `grader check`
subprocesses, a real local redis-server and real uvicorn apps (marked slow)."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ROOT, SUBMISSIONS, cmdline, own_rubric, reaped, wait_while_running

from grader import batch, procfs
from grader.batch import BatchOptions, SubmissionDir, supervisor
from grader.batch.forkserver import CHILD_RESULT_FD, SWITCH_VAR
from grader.batch.integrity import KEY_VAR
from grader.cli import main
from grader.errors import UsageError

APPS = ROOT / "tests" / "apps"
RESULTS = ROOT / "tests" / "results"

# A small rubric of checks that are fast on the reference: the batch's behaviour is under test here, not
# the course rubric's points (which other work changes).
CACHE_ASIDE = '"RA2.1" = { title = "Cache-aside pattern", path = "ra2-caching#cache-aside" }\n'
RUBRIC = own_rubric("batch-test", title="Batch test rubric", sections=CACHE_ASIDE, checks="""\
[checks."cache.populates"]
points = 10
sections = ["RA2.1"]
[checks."cache.ttl"]
points = 10
sections = ["RA2.1"]
[checks."ratelimit.threshold"]
points = 10
""")


def _doc(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def _store(out: Path, name: str, doc: dict, options: BatchOptions | None = None) -> Path:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    batch.write_submission(folder, doc, batch.grading_settings(options or BatchOptions(out=out)))
    return folder / batch.RESULT


# --------------------------------------------------------------------------------------------- planning


def test_find_submissions_takes_sub_folders_and_notes_the_rest(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    for name in ("bob", "alice", ".git", "results"):
        (subs / name).mkdir(parents=True)
    (subs / "notes.txt").write_text("x")
    found, notes = batch.find_submissions(subs, subs / "results")
    assert [s.name for s in found] == ["alice", "bob"]
    assert "ignored notes.txt: not a folder" in notes
    assert "ignored results: it is the results folder" in notes


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "is not a folder"),
        (lambda p: p.mkdir(), "no submission folders"),
    ],
)
def test_find_submissions_rejects_bad_input(tmp_path: Path, make, message: str) -> None:
    subs = tmp_path / "subs"
    make(subs)
    with pytest.raises(UsageError, match=message):
        batch.find_submissions(subs, tmp_path / "out")


def test_out_must_not_be_the_submissions_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(UsageError, match="--out"):
        batch.find_submissions(tmp_path, tmp_path)


def test_stored_status_trusts_only_complete_documents(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    assert batch.stored_status(path) is None
    path.write_text('{"status": "graded", "score": 8')  # a half-written file from a killed writer
    assert batch.stored_status(path) is None
    path.write_text('{"status": "running"}')
    assert batch.stored_status(path) is None
    path.write_text(json.dumps(_doc("graded")))
    assert batch.stored_status(path) == "graded"
    path.write_text(json.dumps(_doc("error")))
    assert batch.stored_status(path) == "error"


def test_plan_keeps_done_work_unless_asked(tmp_path: Path) -> None:
    subs, out = tmp_path / "subs", tmp_path / "out"
    for name in ("alice", "bob", "carol"):
        (subs / name).mkdir(parents=True)
    _store(out, "alice", _doc("graded"))
    _store(out, "bob", _doc("error"))
    (out / "carol").mkdir()
    (out / "carol" / batch.RESULT).write_text("{")  # interrupted mid-write (cannot happen, but never trust it)

    def names(options: BatchOptions) -> tuple[list[str], list[str]]:
        p = batch.plan(subs, options)
        return [s.name for s in p.to_grade], [s.name for s in p.kept]

    assert names(BatchOptions(out=out)) == (["carol"], ["alice", "bob"])
    assert names(BatchOptions(out=out, retry_errors=True)) == (["bob", "carol"], ["alice"])
    assert names(BatchOptions(out=out, fresh=True)) == (["alice", "bob", "carol"], [])


def test_plan_grades_again_what_other_settings_made(tmp_path: Path) -> None:
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "alice").mkdir(parents=True)
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(RUBRIC)
    graded_with = BatchOptions(out=out, rubric=str(rubric))
    _store(out, "alice", _doc("graded"), graded_with)

    def to_grade(options: BatchOptions) -> list[str]:
        return [s.name for s in batch.plan(subs, options).to_grade]

    assert to_grade(graded_with) == []
    assert to_grade(BatchOptions(out=out, rubric=str(rubric), only=("cache.*",))) == ["alice"]
    assert to_grade(BatchOptions(out=out)) == ["alice"]  # the shipped rubric, not this one
    assert "made with another rubric" in " ".join(batch.plan(subs, BatchOptions(out=out)).notes)
    rubric.write_text(RUBRIC.replace("points = 10", "points = 20", 1))  # the same file, edited
    assert to_grade(graded_with) == ["alice"]
    rubric.write_text(RUBRIC)
    (out / "alice" / batch.GRADED_WITH).unlink()  # made by a grader that did not record its settings
    assert to_grade(graded_with) == ["alice"]


def test_plan_grades_again_what_another_start_timeout_or_another_archive_made(tmp_path: Path) -> None:
    """--start-timeout decides app.starts, and a student may hand in a new archive: a result made otherwise is not
    kept. A folder is read as it is: its result is kept."""
    import zipfile

    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "alice").mkdir(parents=True)
    with zipfile.ZipFile(subs / "bob.zip", "w") as zf:
        zf.writestr("main.py", "app = 1\n")
    options = BatchOptions(out=out, start_timeout=0.2)
    for sub in batch.find_submissions(subs, out)[0]:
        (out / sub.name).mkdir(parents=True)
        batch.write_submission(out / sub.name, _doc("graded"), batch.submission_settings(options, sub))

    def to_grade(options: BatchOptions) -> list[str]:
        return [s.name for s in batch.plan(subs, options).to_grade]

    assert to_grade(options) == []
    assert to_grade(BatchOptions(out=out, start_timeout=30)) == ["alice", "bob"]
    with zipfile.ZipFile(subs / "bob.zip", "w") as zf:
        zf.writestr("main.py", "app = 2\n")  # handed in again
    assert to_grade(options) == ["bob"]


def test_an_interrupted_fresh_run_goes_on_as_a_plain_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--fresh stops trusting the earlier results at its start: interrupted, the plain run that follows grades
    what it did not get to, instead of keeping results from before it."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    for name in ("alice", "bob"):
        (subs / name).mkdir(parents=True)
        _store(out, name, _doc("graded"))
    monkeypatch.setattr(supervisor.Grader, "grade", lambda self, sub: None)  # interrupted before any finished
    batch.run_batch(subs, BatchOptions(out=out, fresh=True))
    assert [s.name for s in batch.plan(subs, BatchOptions(out=out)).to_grade] == ["alice", "bob"]


def test_a_forged_result_is_graded_again(tmp_path: Path) -> None:
    subs, out = tmp_path / "subs", tmp_path / "out"
    for name in ("alice", "bob", "carol"):
        (subs / name).mkdir(parents=True)
    for name in ("alice", "bob", "carol"):
        _store(out, name, _doc("graded"))
    forged = json.loads((out / "bob" / batch.RESULT).read_text())
    forged["grade"], forged["score"] = "S", 100
    (out / "bob" / batch.RESULT).write_text(json.dumps(forged, indent=2, ensure_ascii=False) + "\n")
    settings = json.loads((out / "carol" / batch.GRADED_WITH).read_text())
    del settings["result_hmac_sha256"]  # a result stored without its signature
    (out / "carol" / batch.GRADED_WITH).write_text(json.dumps(settings))

    the_plan = batch.plan(subs, BatchOptions(out=out))
    assert [s.name for s in the_plan.to_grade] == ["bob", "carol"]
    assert [s.name for s in the_plan.kept] == ["alice"]
    assert "grading 2 stored result(s) again: their signature is missing or does not match" in " ".join(the_plan.notes)
    assert [name for name, _ in batch.collect_results(out)] == ["alice"]  # the overview leaves them out too


def test_write_submission_writes_reports_and_an_atomic_result(tmp_path: Path) -> None:
    result = _store(tmp_path, "alice", _doc("graded"))
    folder = result.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        batch.GRADED_WITH, "junit.xml", "report.html", "report.md", "result.json"]
    assert json.loads(result.read_text())["grade"] == "B"


def test_check_argv_passes_the_options_through(tmp_path: Path) -> None:
    rubric = tmp_path / "r.toml"
    rubric.write_text(RUBRIC)
    options = BatchOptions(out=tmp_path / "results", rubric=str(rubric), redis="local", env="current",
                           start_timeout=7, docs_url="https://docs.example", only=("cache.*", "app.starts"))
    argv = batch.check_argv(SubmissionDir("alice", tmp_path / "alice"), options, 7)
    assert argv[:2] == [str((tmp_path / "alice").resolve()), "--no-color"]
    pairs = dict(zip(argv[2::2], argv[3::2]))
    assert pairs["--rubric"] == str(rubric.resolve())
    assert pairs["--redis"] == "local" and pairs["--env"] == "current" and pairs["--start-timeout"] == "7"
    assert pairs["--docs-url"] == "https://docs.example"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--only"] == ["cache.*", "app.starts"]
    # The result comes back through a descriptor: no word of the command line names the results folder.
    assert pairs["--result-fd"] == "7" and "--json" not in argv
    assert not [a for a in argv if "results" in a]


def test_the_child_environment_names_neither_the_results_nor_the_key(tmp_path: Path) -> None:
    env = supervisor._child_env("token")
    assert env[batch.BATCH_VAR] == "token"
    assert KEY_VAR not in env and os.environ[KEY_VAR] not in env.values()


def test_jobs_may_exceed_the_cores_up_to_a_few_per_core() -> None:
    cores = len(os.sched_getaffinity(0))
    assert batch.cap_jobs(1) == 1
    assert batch.cap_jobs(cores + 1) == cores + 1  # most of a grading waits: more jobs than cores pay off
    assert batch.cap_jobs(10_000) == batch.JOBS_PER_CORE * cores


def test_progress_estimates_what_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([110.0, 130.0, 200.0])
    monkeypatch.setattr(batch.run.time, "monotonic", lambda: next(clock))
    progress = batch.Progress(total=4, started=100.0)
    assert progress.step() == "[1/4, ETA 30s]"  # 10 s per submission so far, 3 left
    assert progress.step() == "[2/4, ETA 30s]"
    assert progress.step() == "[3/4, ETA 33s]"
    assert progress.step() == "[4/4, done]"


def test_a_finished_line_is_one_printable_line_whatever_the_folder_is_called() -> None:
    """The progress line names the submission's folder, and a folder's name may hold what a terminal acts on: a
    title set, a screen cleared (ESC [ or its one-character form U+009B), a carriage return, a line of its own."""
    name = "evil\x1b]0;title\x07\x1b[2J\x9b2J\u202eRTL\rCR\nNL"
    shown = r"evil\x1b]0;title\x07\x1b[2J\x9b2J\u202eRTL\x0dCR\x0aNL"  # codes, not acts: and never two names as one
    assert batch.Finished(name, "graded", "S", 95.0, None).line == f"{shown}: S (95)"
    failed = batch.Finished(name, "error", None, None, "uv said:\n\x1b[31mno\x1b[0m")
    assert failed.line == f"{shown}: not graded - uv said: no"


def test_error_document_has_the_result_shape(tmp_path: Path) -> None:
    doc = batch.error_document(SubmissionDir("zed", tmp_path), "the grader was killed\nby SIGKILL", 1.5)
    assert doc["schema"] == "redis-grader/result/v1"
    assert doc["status"] == "error" and doc["grade"] is None and doc["checks"] == []
    assert doc["error"] == "the grader was killed by SIGKILL"
    assert doc["submission"]["name"] == "zed"


# --------------------------------------------------------------------------------------------- the CLI, no grading


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere", "--out", "o"], "does not exist"),
        (["subs", "--out", "o", "--rubric", "no-such-rubric"], "unknown rubric"),
        (["subs", "--out", "o", "--jobs", "0"], "--jobs"),
        (["subs"], "--out"),
        (["subs", "--out", "a-file"], "grader: error: --out 'a-file' is a file, not a folder\n"),
        (["subs", "--out", "a-file/o"], "grader: error: cannot create the results folder 'a-file/o': Not a directory\n"),
    ],
)
def test_batch_usage_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    (tmp_path / "a-file").write_text("x")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["batch", "--runtime", "local", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------------------- end to end
# Submission folders get a per-run suffix and the batch a tag in its environment, so `_left_behind` finds
# exactly this test's processes even while other grading runs share the machine (no_leftovers, which looks
# at every grader process on the machine, is what CI relies on).

TAG = secrets.token_hex(4)
TAG_VAR = "REDIS_GRADER_TEST_TAG"


def n(name: str) -> str:
    return f"{name}-{TAG}"


def _start_batch(class_dir: Path, out: Path, **popen: Any) -> subprocess.Popen[str]:
    """`grader batch` on `class_dir` in a session of its own (so a test can signal it and reap what is left)."""
    popen.setdefault("env", _env())
    return subprocess.Popen(_argv(class_dir, out, "--start-timeout", "120"), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, **popen)


def _app_is_up() -> bool:
    return any("uvicorn" in p for p in _left_behind())


def _left_behind() -> list[str]:
    """Live processes of this test's batches: the `grader check` children and what inherits their environment
    (the tag), and apps, whose environment the sandbox scrubs, by their working directory (the workspace copy
    is named after the submission)."""
    found = []
    for pid in procfs.pids():
        if pid == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if procfs.has_env_entry(pid, TAG_VAR, TAG) or ("redis-grader-ws-" in cwd and TAG in cwd):
            command = cmdline(pid).replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid}: {command[:120]}")
    return found


def _env() -> dict[str, str]:
    return {**os.environ, TAG_VAR: TAG}


@pytest.fixture
def class_dir(tmp_path: Path) -> Path:
    subs = tmp_path / "submissions"
    subs.mkdir()
    shutil.copytree(SUBMISSIONS / "reference", subs / n("alice"))
    (subs / n("noapp")).mkdir()
    (subs / n("noapp") / "README.md").write_text("I forgot to push my code\n")
    (subs / n("broken")).mkdir()
    shutil.copy(APPS / "import_error" / "main.py", subs / n("broken") / "main.py")
    (subs / ".hidden").mkdir()
    (subs / "notes.txt").write_text("not a submission\n")
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    return subs


@pytest.fixture
def hang_dir(tmp_path: Path) -> Path:
    """One submission whose app never finishes starting (its lifespan waits forever and ignores SIGTERM)."""
    subs = tmp_path / "submissions"
    (subs / n("hang")).mkdir(parents=True)
    shutil.copy(APPS / "hang_startup_chatty" / "main.py", subs / n("hang") / "main.py")
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    return subs


def _argv(subs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grader", "batch", "--runtime", "local", str(subs), "--out", str(out), "--env", "current", "--redis",
            "local", "--jobs", "2", "--only", "cache.*", "--rubric", str(subs.parent / "rubric.toml"), *extra]


def _run(subs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(subs, out, *extra), check=False, cwd=ROOT, env=_env(), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=280)


def _mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/result.json")}


@pytest.mark.slow
def test_batch_grades_a_class_then_resumes_then_starts_fresh(class_dir: Path, no_leftovers: None) -> None:
    out = class_dir.parent / "results"
    first = _run(class_dir, out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "ignored notes.txt: not a folder" in first.stderr
    assert f"{n('alice')}: S (100)" in first.stdout
    assert "3 of 3 done (3 graded now" in first.stdout

    with (out / "gradebook.csv").open(encoding="utf-8") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert list(rows) == [n("alice"), n("broken"), n("noapp")]  # sorted; .hidden and notes.txt are not submissions
    alice, broken, noapp = rows.values()
    assert alice["grade"] == "S" and alice["cache.populates"] == "passed" and alice["cache.ttl"] == "passed"
    assert alice["ratelimit.threshold"] == "skipped"  # not selected by --only
    assert broken["app.starts"] == "failed" and broken["grade"] == "C" and broken["status"] == "graded"
    assert noapp["app.starts"] == "failed"
    for name in rows:
        files = {p.name for p in (out / name).iterdir()}
        assert {"result.json", "report.html", "report.md", "junit.xml", "grader.log"} <= files
    starts = json.loads((out / n("broken") / "result.json").read_text())["checks"][0]
    assert "redis_grader_not_installed_pkg" in json.dumps(starts)  # the likely cause, from the app's log

    index = (out / "index.html").read_text(encoding="utf-8")
    for text in (f'href="{n("alice")}/report.html"', f'href="{n("broken")}/report.html"', "Grade distribution",
                 "Checks, hardest first", "cache.populates", "app.starts"):
        assert text in index

    # Resume: everything is done, so nothing is graded again (no child runs, no file is rewritten).
    before = _mtimes(out)
    second = _run(class_dir, out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "kept 3 result(s) from an earlier run" in second.stderr
    assert n("alice") not in second.stdout and "0 graded now" in second.stdout
    assert _mtimes(out) == before
    assert (out / "gradebook.csv").is_file() and (out / "index.html").is_file()

    # A result.json rewritten by anything but the batch (here: a better grade) is graded again on resume.
    forged_path = out / n("noapp") / "result.json"
    forged = json.loads(forged_path.read_text())
    forged["grade"], forged["score"] = "S", 100
    forged_path.write_text(json.dumps(forged, indent=2))
    regraded = _run(class_dir, out)
    assert regraded.returncode == 0, regraded.stdout + regraded.stderr
    assert "grading 1 stored result(s) again: their signature is missing or does not match" in regraded.stderr
    assert "1 graded now" in regraded.stdout and f"{n('noapp')}: C" in regraded.stdout
    assert json.loads(forged_path.read_text())["grade"] == "C"

    # --fresh grades every submission again.
    third = _run(class_dir, out, "--fresh")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "3 graded now" in third.stdout
    after = _mtimes(out)
    assert all(after[name] > before[name] for name in before)
    assert not _left_behind()


@pytest.mark.slow
def test_a_hanging_submission_times_out_as_an_error(hang_dir: Path, no_leftovers: None) -> None:
    out = hang_dir.parent / "results"
    # --start-timeout would wait 120 s for the app: only the batch's --timeout can end this grading.
    run = _run(hang_dir, out, "--timeout", "2", "--start-timeout", "120")
    assert run.returncode == 3, run.stdout + run.stderr
    assert f"{n('hang')}: not graded - grading did not finish within 2 s and was stopped" in run.stdout
    doc = json.loads((out / n("hang") / "result.json").read_text())
    assert doc["status"] == "error" and doc["grade"] is None and "did not finish within 2 s" in doc["error"]
    with (out / "gradebook.csv").open(encoding="utf-8") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["name"] == n("hang") and row["status"] == "error" and "did not finish" in row["error"]
    assert "did not finish within 2 s" in (out / "index.html").read_text()
    assert "Could not grade" in (out / n("hang") / "report.html").read_text()
    assert not _left_behind()

    # An error is kept on resume (exit 3 again, nothing runs) unless --retry-errors.
    again = _run(hang_dir, out, "--timeout", "2", "--start-timeout", "120")
    assert again.returncode == 3 and "kept 1 result(s)" in again.stderr and n("hang") + ":" not in again.stdout
    retry = _run(hang_dir, out, "--timeout", "2", "--start-timeout", "120", "--retry-errors")
    assert retry.returncode == 3 and f"{n('hang')}: not graded" in retry.stdout
    assert not _left_behind()


@pytest.mark.slow
def test_a_child_that_will_not_stop_is_killed_with_its_app_and_redis(
    hang_dir: Path, no_leftovers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # grace=0: the child gets SIGINT but no time to clean up, so the batch must SIGKILL the child and the
    # app and redis-server it started (they run in sessions of their own: a process-group kill misses them).
    monkeypatch.setenv(TAG_VAR, TAG)
    options = BatchOptions(out=hang_dir.parent / "results", timeout=2, grace=0, rubric=str(hang_dir.parent / "rubric.toml"),
                           redis="local", env="current", start_timeout=120)
    summary = batch.run_batch(hang_dir, options)
    assert summary.errors_now == 1 and summary.not_graded == [n("hang")]
    assert not _left_behind()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_the_running_children_and_keeps_what_is_done(
    class_dir: Path, no_leftovers: None, signum: signal.Signals
) -> None:
    # SIGTERM is a cancelled CI job: it must unwind the same way.
    shutil.rmtree(class_dir / n("broken"))
    shutil.rmtree(class_dir / n("noapp"))
    (class_dir / n("zhang")).mkdir()
    shutil.copy(APPS / "hang_startup_chatty" / "main.py", class_dir / n("zhang") / "main.py")
    out = class_dir.parent / "results"
    proc = _start_batch(class_dir, out)
    with reaped(proc):
        # Wait until alice is done and zhang's app is up.
        wait_while_running(proc, lambda: (out / n("alice") / "result.json").is_file() and _app_is_up(),
                           "the batch did not get going")
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted" in output and "1 of 2 done" in output
    assert (out / n("alice") / "result.json").is_file()
    assert not (out / n("zhang") / "result.json").exists()  # not done, so a resumed run grades it
    with (out / "gradebook.csv").open(encoding="utf-8") as fh:
        assert [r["name"] for r in csv.DictReader(fh)] == [n("alice")]
    assert not _left_behind()


def _ignore_sigint() -> None:
    """What a non-interactive shell does to a job it starts in the background (`grader batch ... &`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
def test_a_batch_started_with_sigint_ignored_still_stops_on_sigint(hang_dir: Path, no_leftovers: None) -> None:
    out = hang_dir.parent / "results"
    proc = _start_batch(hang_dir, out, preexec_fn=_ignore_sigint)
    with reaped(proc):
        wait_while_running(proc, _app_is_up, "the batch did not get going")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    assert not (out / n("hang") / "result.json").exists()
    assert not _left_behind()


def _children(pid: int) -> list[int]:
    return [child for child in procfs.pids() if (info := procfs.stat(child)) and info.ppid == pid]


@pytest.mark.slow
@pytest.mark.parametrize("fork_server", ["1", "0"])
def test_the_child_and_its_app_learn_nothing_of_where_results_go(hang_dir: Path, fork_server: str,
                                                                 no_leftovers: None) -> None:
    # While the hanging app is up, read what the `grader check` child (forked by the fork server, or started
    # afresh), the fork server and the app got: their command lines, environments and open files. None names the
    # results folder or the signing key; the child has its result pipe, and nothing else the batch opened.
    out = hang_dir.parent / "results"
    proc = _start_batch(hang_dir, out, env={**_env(), SWITCH_VAR: fork_server})
    with reaped(proc):
        wait_while_running(proc, _app_is_up, "the batch did not get going")
        graders = _children(proc.pid)
        child = [pid for server in graders for pid in _children(server)] if fork_server == "1" else graders
        app = [int(line.split(":")[0]) for line in _left_behind() if "uvicorn" in line]
        assert len(graders) == 1 and len(child) == 1 and app
        for pid in graders + child + app:
            seen = cmdline(pid) + procfs.environ(pid) + "\0".join(_open_files(pid)).encode()
            for secret in (str(out), str(out.resolve()), os.environ[KEY_VAR]):
                assert secret.encode() not in seen, f"process {pid} can learn {secret}"
        if fork_server == "0":
            assert b"--result-fd" in cmdline(child[0])
        else:  # forked: its result pipe is its descriptor 3
            assert os.readlink(f"/proc/{child[0]}/fd/{CHILD_RESULT_FD}").startswith("pipe:")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert not (out / n("hang") / "result.json").exists()
    assert not _left_behind()


def _open_files(pid: int) -> list[str]:
    """Where each of the process's open descriptors points ("pipe:[123]" for a pipe)."""
    targets = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in fds:
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return targets
