"""The GitHub Action: scripts/action-step.sh run for real with a fake `grader` first on PATH (the real CLI is
tested elsewhere), and action.yml / the example workflow checked for the wiring the script relies on."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEP = ROOT / "scripts" / "action-step.sh"
SAMPLE = Path(__file__).parent / "results" / "graded.json"

# Records its argv, then behaves as FAKE_MODE says: "graded" writes the reports given by --json/--junit/
# --markdown/--html and exits FAKE_EXIT; "crash" writes nothing and exits 3.
FAKE_GRADER = """\
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ARGV"], "w", encoding="utf-8") as handle:
    json.dump(args, handle)
if os.environ.get("FAKE_MODE") == "crash":
    print("grader: error: no Redis could be started", file=sys.stderr)
    sys.exit(3)
def option(name):
    return args[args.index(name) + 1]
with open(os.environ["FAKE_RESULT"], encoding="utf-8") as handle:
    result = json.load(handle)
with open(option("--json"), "w", encoding="utf-8") as handle:
    json.dump(result, handle)
with open(option("--markdown"), "w", encoding="utf-8") as handle:
    handle.write("## fake report: grade **%s**\\n" % result["grade"])
with open(option("--junit"), "w", encoding="utf-8") as handle:
    handle.write("<testsuites/>")
with open(option("--html"), "w", encoding="utf-8") as handle:
    handle.write("<!doctype html><title>report</title>")
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str], tmp: Path) -> None:
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.summary = (tmp / "summary.md").read_text(encoding="utf-8")
        self.outputs = (tmp / "outputs.txt").read_text(encoding="utf-8")
        argv_file = tmp / "argv.json"
        self.argv = json.loads(argv_file.read_text(encoding="utf-8")) if argv_file.exists() else None


@pytest.fixture
def run_step(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "grader"
    fake.write_text(f"#!{sys.executable}\n{FAKE_GRADER}", encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "summary.md").write_text("earlier step\n", encoding="utf-8")
    (tmp_path / "outputs.txt").write_text("", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()

    def run(inputs: dict[str, str] | None = None, *, mode: str = "graded", exit_code: int = 0,
            result: dict | None = None) -> Run:
        result_file = tmp_path / "result.json"
        result_file.write_text(json.dumps(result or json.loads(SAMPLE.read_text(encoding="utf-8"))), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
        env.update({
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "outputs.txt"),
            "FAKE_ARGV": str(tmp_path / "argv.json"),
            "FAKE_RESULT": str(result_file),
            "FAKE_MODE": mode,
            "FAKE_EXIT": str(exit_code),
            **(inputs or {}),
        })
        proc = subprocess.run(["bash", str(STEP)], check=False, cwd=work, env=env, capture_output=True, text=True, timeout=120)
        return Run(proc, tmp_path)

    run.work = work  # type: ignore[attr-defined]
    return run


def test_graded_run_publishes_summary_outputs_and_exit_code(run_step, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_step({"INPUT_PATH": "sub", "INPUT_MIN_GRADE": "B", "INPUT_RUBRIC": "redis-module", "INPUT_OUTPUT_DIR": str(out)})
    assert run.code == 0, run.stderr
    assert run.argv == [
        "check", "sub", "--min-grade", "B", "--rubric", "redis-module",
        "--json", f"{out}/r.json", "--junit", f"{out}/junit.xml", "--markdown", f"{out}/summary.md",
        "--html", f"{out}/report.html",
    ]
    assert run.summary == "earlier step\n## fake report: grade **B**\n"  # appended, not overwritten
    assert run.outputs.splitlines() == [
        "grade=B", "score=73.33", f"json-path={out}/r.json", f"junit-path={out}/junit.xml",
        f"markdown-path={out}/summary.md", f"html-path={out}/report.html",
    ]
    assert "::notice title=redis-grader::grade B" in run.stdout
    assert (out / "junit.xml").is_file()


def test_below_min_grade_keeps_exit_code_one_and_still_sets_outputs(run_step) -> None:
    run = run_step({"INPUT_MIN_GRADE": "A"}, exit_code=1)
    assert run.code == 1
    assert run.outputs.splitlines()[:2] == ["grade=B", "score=73.33"]
    assert "::error title=redis-grader::grade B is below the required A" in run.stdout


def test_defaults_when_no_inputs_are_given(run_step) -> None:
    run = run_step()
    assert run.code == 0
    assert run.argv[:6] == ["check", ".", "--min-grade", "C", "--rubric", "redis-module"]
    assert run.argv[6:8] == ["--json", "./r.json"]
    assert (run_step.work / "r.json").is_file()


def test_grader_failure_without_reports(run_step, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # A report left by an earlier run must not be published as this run's.
    (out / "r.json").write_text(json.dumps({"grade": "S", "score": 100}), encoding="utf-8")
    (out / "summary.md").write_text("stale", encoding="utf-8")
    run = run_step({"INPUT_OUTPUT_DIR": str(out)}, mode="crash")
    assert run.code == 3
    assert "stale" not in run.summary
    assert "could not grade this submission" in run.summary and "exited with code 3" in run.summary
    assert run.outputs.splitlines() == ["json-path=", "junit-path=", "markdown-path=", "html-path="]
    assert "::error title=redis-grader::grader check failed with exit code 3" in run.stdout


def test_ungraded_result_gives_empty_outputs(run_step) -> None:
    result = json.loads((Path(__file__).parent / "results" / "error.json").read_text(encoding="utf-8"))
    run = run_step(result=result, exit_code=3)
    assert run.code == 3
    assert run.outputs.splitlines()[:2] == ["grade=", "score="]
    assert [line for line in run.stdout.splitlines() if line.startswith("::error file=")] == []


def test_inputs_are_data_not_shell_code(run_step, tmp_path: Path) -> None:
    odd = "my sub; touch pwned $(touch pwned2) `touch pwned3`"
    run = run_step({"INPUT_PATH": odd, "INPUT_RUBRIC": "r'\"x"})
    assert run.code == 0
    assert run.argv[1] == odd and run.argv[5] == "r'\"x"
    assert not any(run_step.work.glob("pwned*")) and not any(tmp_path.glob("pwned*"))


# --- action.yml and the example workflow -------------------------------------------------------------------


def test_action_yml_wires_the_step_script() -> None:
    yaml = pytest.importorskip("yaml")
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    inputs = action["inputs"]
    assert {k: inputs[k]["default"] for k in ("path", "min-grade", "rubric", "python-version")} == {
        "path": ".", "min-grade": "C", "rubric": "redis-module", "python-version": "3.11",
    }
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    by_action = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
    assert set(by_action) == {"actions/setup-python", "actions/cache", "actions/upload-artifact"}

    # The caller's Python is left alone: the grader gets its own venv from setup-python's interpreter.
    python = by_action["actions/setup-python"]
    assert python["with"]["update-environment"] is False
    install = next(s for s in steps if s.get("name") == "Install redis-grader")
    assert install["env"]["GRADER_PYTHON"] == f"${{{{ steps.{python['id']}.outputs.python-path }}}}"
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    venv = install["env"]["GRADER_VENV"]
    assert venv.startswith("${{ runner.temp }}/") and '"$GRADER_PYTHON" -m venv "$GRADER_VENV"' in install["run"]
    assert '"$GRADER_VENV/bin/python" -m pip install' in install["run"]

    # One cache for pip, uv and the grader's environments, keyed on the submission's requirements.
    cache = by_action["actions/cache"]
    cache_dir = cache["with"]["path"]
    assert install["env"]["XDG_CACHE_HOME"] == cache_dir
    key = cache["with"]["key"]
    assert "hashFiles(" in key and "requirements.txt" in key and "inputs.path" in key and "inputs.python-version" in key

    grade = next(s for s in steps if s.get("id") == "grade")
    assert "scripts/action-step.sh" in grade["run"] and "${{ github.action_path }}" in grade["run"]
    assert grade["env"]["INPUT_PATH"] == "${{ inputs.path }}"
    assert grade["env"]["INPUT_MIN_GRADE"] == "${{ inputs.min-grade }}"
    assert grade["env"]["INPUT_RUBRIC"] == "${{ inputs.rubric }}"
    assert grade["env"]["GRADER_BIN_DIR"] == f"{venv}/bin" and grade["env"]["XDG_CACHE_HOME"] == cache_dir
    assert "${{ inputs." not in grade["run"]  # inputs never spliced into shell code
    upload = steps[-1]
    assert upload is by_action["actions/upload-artifact"] and upload["if"] == "always()"
    out_dir = grade["env"]["INPUT_OUTPUT_DIR"]
    for name in ("junit.xml", "r.json", "summary.md", "report.html"):
        assert f"{out_dir}/{name}" in upload["with"]["path"]
    outputs = {name: spec["value"] for name, spec in action["outputs"].items()}
    assert outputs == {name: f"${{{{ steps.grade.outputs.{name} }}}}" for name in
                       ("grade", "score", "json-path", "junit-path", "markdown-path", "html-path")}
    assert os.access(STEP, os.X_OK)


def test_third_party_actions_are_pinned_by_commit_sha() -> None:
    pinned = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<action>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40}) # v\d+\.\d+\.\d+$")
    lines = [line for line in (ROOT / "action.yml").read_text(encoding="utf-8").splitlines() if "uses:" in line]
    assert len(lines) == 3
    for line in lines:
        assert pinned.match(line), line


def test_the_grader_venv_comes_first_on_path_for_this_step_only(run_step, tmp_path: Path) -> None:
    # The fake grader is only in GRADER_BIN_DIR, as the real one is only in the action's own venv.
    run = run_step({"GRADER_BIN_DIR": str(tmp_path / "bin"), "PATH": os.environ["PATH"]})
    assert run.code == 0, run.stderr
    assert run.argv[0] == "check"


# --- annotations ---------------------------------------------------------------------------------------------


def _annotations(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("::error") and "title=redis-grader" not in line]


def test_one_annotation_per_failed_check(run_step) -> None:
    run = run_step()
    assert [line.split("::")[1] for line in _annotations(run.stdout)] == [
        "error title=cache.stampede", "error title=ratelimit.threshold", "error title=ratelimit.lua",
    ]
    assert "::error title=ratelimit.threshold::request 11 from 127.0.1.9 got 500, expected 429" in run.stdout


def test_annotations_point_at_the_evidence_file_and_line(run_step) -> None:
    result = json.loads(SAMPLE.read_text(encoding="utf-8"))
    checks = {c["id"]: c for c in result["checks"]}
    checks["ratelimit.lua"]["evidence"] = {"findings": ["app/limiter.py:12: redis.incr(key)"]}
    checks["ratelimit.lua"]["message"] = "two commands,\nnot one: 100% separate"
    checks["quality.tests"].update(applicable=True, message="no pytest")  # a skip that cost points
    run = run_step({"INPUT_PATH": "students/alice"}, result=result)
    found = _annotations(run.stdout)
    assert "::error file=students/alice/app/limiter.py,line=12,title=ratelimit.lua::two commands,%0Anot one: 100%25 separate" in found
    assert "::error title=quality.tests::no pytest" in found
    assert len(found) == 4


def test_example_workflow_uses_the_action() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / "examples" / "github-workflow.yml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["grade"]["steps"]
    action_steps = [s for s in steps if "redis-grader" in s.get("uses", "")]
    assert len(action_steps) == 1
    assert set(action_steps[0]["with"]) <= {"path", "min-grade", "rubric", "python-version", "artifact-name"}


@pytest.mark.parametrize("script", ["scripts/action-step.sh", "examples/gradescope/run_autograder", "examples/gradescope/setup.sh"])
def test_shell_scripts_parse(script: str) -> None:
    done = subprocess.run(["bash", "-n", str(ROOT / script)], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
