"""Grading end to end through the CLI: the reference grades S on both Redis backends, grading is repeatable,
and bad input gets one clear line and leaves nothing running."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REDIS_IMAGE, ROOT, SUBMISSIONS, grader_processes, reaped, wait_while_running

from grader.registry import load_checks

REFERENCE = SUBMISSIONS / "reference"


def run_grader(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, check=False,
                          timeout=timeout)


def grade_json(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "result.json"
    done = run_grader("check", *args, "--json", str(out))
    return done, json.loads(out.read_text()) if out.exists() else {}


def outcomes(result: dict) -> dict[str, str]:
    return {c["id"]: c["outcome"] for c in result["checks"]}


@pytest.mark.slow
def test_reference_grades_s_on_local_redis_twice_identically(tmp_path, no_leftovers):
    first, result = grade_json(tmp_path, str(REFERENCE), "--env", "current", "--redis", "local")
    assert first.returncode == 0, first.stdout + first.stderr
    assert result["grade"] == "S" and result["score"] == 100, outcomes(result)
    assert result["environment"]["redis"]["backend"] == "local"
    _, again = grade_json(tmp_path, str(REFERENCE), "--env", "current", "--redis", "local")
    assert outcomes(again) == outcomes(result)


@pytest.mark.slow
@pytest.mark.docker
def test_reference_grades_s_on_docker_redis(tmp_path, docker_engine, no_leftovers):
    done, result = grade_json(tmp_path, str(REFERENCE), "--env", "current", "--redis", "docker",
                              "--redis-image", REDIS_IMAGE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["environment"]["redis"]["backend"] == "docker"
    assert result["grade"] == "S", outcomes(result)


def test_missing_path_is_one_line_and_exit_2(tmp_path):
    done = run_grader("check", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_unknown_option_value_is_exit_2():
    done = run_grader("check", str(REFERENCE), "--redis", "cloud")
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.parametrize("seconds", ["-1", "0", "nan", "inf", "soon"])
@pytest.mark.parametrize("option", [("check", "--start-timeout"), ("batch", "--start-timeout"), ("batch", "--timeout")])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_exit_2(tmp_path, option, seconds):
    from click.testing import CliRunner

    from grader.cli import main

    command, name = option
    where = [str(REFERENCE)] if command == "check" else [str(SUBMISSIONS), "--out", str(tmp_path / "out")]
    done = CliRunner().invoke(main, [command, *where, name, seconds])
    assert done.exit_code == 2, done.output
    assert f"Invalid value for '{name}'" in done.output and ("x>0" in done.output or "number of seconds" in done.output)


def test_broken_rubric_names_the_file_and_problem(tmp_path):
    rubric = tmp_path / "broken.toml"
    rubric.write_text('name = "x"\ndocs_url = "u"\n[grades]\nS = 90\n')
    done = run_grader("check", str(REFERENCE), "--rubric", str(rubric))
    assert done.returncode == 2
    assert str(rubric) in done.stderr and "'A'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["check", "batch"])
def test_an_only_that_selects_no_check_is_a_usage_error(tmp_path, command):
    """A mistyped id must not grade app.starts alone and call it full marks; a pattern that selects is fine."""
    where = [str(REFERENCE)] if command == "check" else [str(SUBMISSIONS), "--out", str(tmp_path / "out")]
    done = run_grader(command, *where, "--only", "ratelimit.treshold", "--only", "cache.*")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "grader: error: --only 'ratelimit.treshold' matches no check of rubric "
        f"{ROOT / 'rubrics' / 'redis-module.toml'} (`grader checks` lists them)")
    assert not (tmp_path / "out").exists()


def test_a_report_path_that_cannot_be_written_is_a_usage_error_before_grading(tmp_path, no_leftovers):
    (tmp_path / "file").write_text("x")
    done, result = grade_json(tmp_path, str(REFERENCE), "--html", str(tmp_path / "file" / "r.html"))
    assert done.returncode == 2 and result == {}, done.stdout + done.stderr
    assert done.stderr.strip() == (f"grader: error: cannot write the HTML report to {tmp_path / 'file' / 'r.html'}: "
                                   f"{tmp_path / 'file'} is not a folder")
    assert done.stdout == ""  # refused before grading: no summary


def test_repo_without_app_grades_c_with_the_reason(tmp_path, no_leftovers):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "util.py").write_text("def f():\n    return 1\n")
    done, result = grade_json(tmp_path, str(tmp_path / "repo"), "--env", "current", "--redis", "local")
    assert done.returncode == 0  # graded C meets the default --min-grade C
    assert result["grade"] == "C"
    starts = next(c for c in result["checks"] if c["id"] == "app.starts")
    assert starts["outcome"] == "failed" and "no FastAPI app" in starts["message"]
    assert "Traceback" not in done.stderr


DEEP_SCHEMA = """

from fastapi import Response as _Response  # noqa: E402

app.router.routes = [r for r in app.router.routes if getattr(r, "path", "") != "/openapi.json"]


@app.get("/openapi.json", include_in_schema=False)
async def _nested_too_deep():
    return _Response(content="[" * 100_000 + "]" * 100_000, media_type="application/json")
"""


@pytest.mark.slow
def test_an_app_whose_json_nests_too_deep_is_graded(tmp_path, no_leftovers):
    """Python's JSON parser raises RecursionError, not ValueError, on `[[[[...]]]]`: from the app it is no schema."""
    repo = tmp_path / "repo"
    shutil.copytree(REFERENCE, repo)
    with (repo / "backend" / "app" / "main.py").open("a") as main:
        main.write(DEEP_SCHEMA)
    done, result = grade_json(tmp_path, str(repo), "--env", "current", "--redis", "local",
                              "--only", "app.starts", "--only", "ratelimit.threshold")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert result["status"] == "graded" and outcomes(result)["ratelimit.threshold"] == "passed"


def test_a_file_name_that_is_not_utf8_is_reported_with_its_bytes_escaped(tmp_path, no_leftovers):
    """An archive made on Windows can hold names in cp1251: bytes no report or JSON file could encode as they are.
    Here it is the folder the app lives in (a file the app imports cannot be so named: it is no Python name)."""
    repo = tmp_path / "repo"
    name = b"\xea\xfd\xf8".decode("utf-8", "surrogateescape")  # "кэш" in cp1251
    shutil.copytree(SUBMISSIONS / "sync-client", repo / name)
    done, result = grade_json(tmp_path, str(repo), "--env", "current", "--redis", "local", "--only", "async.client",
                              "--html", str(tmp_path / "report.html"))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    check = next(c for c in result["checks"] if c["id"] == "async.client")
    assert check["outcome"] == "failed" and "\\xea\\xfd\\xf8/backend/app/main.py:" in check["message"]
    assert "\\xea\\xfd\\xf8/backend" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_a_harness_bug_is_that_submissions_error_never_a_traceback(tmp_path, monkeypatch):
    from grader import runner

    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(runner, "_grade_workspace", broken)
    result = runner.grade(REFERENCE, runner.GradeOptions(env="current", redis="local"))
    assert result["status"] == "error"
    assert result["error"].startswith("harness error at grader/runner.py:") and result["error"].endswith(
        ": KeyError: 'oops'")


@pytest.mark.slow
def test_import_error_fails_app_starts_with_log_tail(tmp_path, no_leftovers):
    done, result = grade_json(tmp_path, str(SUBMISSIONS / "import-error"), "--env", "current", "--redis", "local",
                              "--min-grade", "B")
    assert done.returncode == 1  # graded, below the minimum
    starts = next(c for c in result["checks"] if c["id"] == "app.starts")
    assert starts["outcome"] == "failed"
    assert "ModuleNotFoundError" in "\n".join(starts["evidence"]["log_tail"]) or "No module" in starts["message"]
    # Checks judged from the code alone (async.client) still run; everything that needs the app is skipped.
    from_code = {check.id for check in load_checks().values() if not check.needs_app}
    assert from_code, "some check is judged without the app"
    assert all(c["outcome"] == "skipped" for c in result["checks"] if c["id"] not in {"app.starts", *from_code})
    assert all(c["outcome"] != "skipped" for c in result["checks"] if c["id"] in from_code)


@pytest.mark.slow
def test_startup_that_hangs_fails_within_the_start_timeout(tmp_path, no_leftovers):
    _, result = grade_json(tmp_path, str(SUBMISSIONS / "startup-hangs"), "--env", "current", "--redis", "local",
                              "--start-timeout", "4")
    starts = next(c for c in result["checks"] if c["id"] == "app.starts")
    assert starts["outcome"] == "failed" and "4 s" in starts["message"], starts["message"]
    assert result["grade"] == "C"


def _runs_pytest(pid: int) -> bool:
    try:
        return b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.slow
def test_sigterm_while_the_submissions_own_tests_run_stops_everything(tmp_path, no_leftovers):
    # quality.tests runs the student's suite in the background; a cancelled CI job must not wait for it to end.
    repo = tmp_path / "repo"
    shutil.copytree(REFERENCE, repo)
    (repo / "backend" / "tests" / "test_waits.py").write_text("import time\n\n\ndef test_waits():\n    time.sleep(600)\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader.cli", "check", str(repo), "--env", "current", "--redis", "local",
         "--only", "app.uses_redis_url", "--only", "quality.tests", "--json", str(tmp_path / "result.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    with reaped(proc):
        suite_runs = lambda: any(_runs_pytest(pid) for pid in grader_processes())
        wait_while_running(proc, suite_runs, "the suite never started")
        proc.send_signal(signal.SIGTERM)
        # The suite's own limit is 150 s: a harness that waited for it would still be running at this bound.
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    assert not (tmp_path / "result.json").exists()


def test_grader_checks_lists_the_rubric_then_the_checks_it_leaves_out(tmp_path):
    shipped = run_grader("checks")
    assert shipped.returncode == 0, shipped.stderr
    assert "cache.ttl" in shipped.stdout and "not in this rubric" not in shipped.stdout  # it names every check
    small = tmp_path / "small.toml"
    small.write_text('name = "small"\ndocs_url = "u"\n[grades]\nS = 90\nA = 80\nB = 70\nC = 0\n[sections]\n'
                     '[checks."app.starts"]\npoints = 1\n[checks."cache.ttl"]\npoints = 1\n')
    done = run_grader("checks", "--rubric", str(small))
    listed, _, left_out = done.stdout.partition("not in this rubric:")
    assert "cache.ttl" in listed and "cache.stampede" not in listed
    assert "cache.stampede" in left_out and "cache.ttl" not in left_out
