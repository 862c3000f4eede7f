"""The GitHub Action: scripts/action-step.sh run for real with a fake `grader` first on PATH (the real CLI is
tested elsewhere), and action.yml / the example workflow checked for the wiring the script relies on."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEP = ROOT / "scripts" / "action-step.sh"
SAMPLE = Path(__file__).parent / "results" / "graded.json"

# Records its argv, then behaves as FAKE_MODE says: "graded" writes the reports given by --json/--junit/
# --markdown and exits FAKE_EXIT; "crash" writes nothing and exits 3.
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
    ]
    assert run.summary == "earlier step\n## fake report: grade **B**\n"  # appended, not overwritten
    assert run.outputs.splitlines() == ["grade=B", "score=73.33"]
    assert "::notice title=redis-grader::grade B" in run.stdout
    assert (out / "junit.xml").is_file()


def test_below_min_grade_keeps_exit_code_one_and_still_sets_outputs(run_step) -> None:
    run = run_step({"INPUT_MIN_GRADE": "A"}, exit_code=1)
    assert run.code == 1
    assert run.outputs.splitlines() == ["grade=B", "score=73.33"]
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
    assert run.outputs == ""
    assert "::error title=redis-grader::grader check failed with exit code 3" in run.stdout


def test_ungraded_result_gives_empty_outputs(run_step) -> None:
    result = json.loads((Path(__file__).parent / "results" / "error.json").read_text(encoding="utf-8"))
    run = run_step(result=result, exit_code=3)
    assert run.code == 3
    assert run.outputs.splitlines() == ["grade=", "score="]


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
    assert steps[0]["uses"].startswith("actions/setup-python@")
    assert "pip install" in steps[1]["run"] and steps[1]["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    grade = next(s for s in steps if s.get("id") == "grade")
    assert "scripts/action-step.sh" in grade["run"] and "${{ github.action_path }}" in grade["run"]
    assert grade["env"]["INPUT_PATH"] == "${{ inputs.path }}"
    assert grade["env"]["INPUT_MIN_GRADE"] == "${{ inputs.min-grade }}"
    assert grade["env"]["INPUT_RUBRIC"] == "${{ inputs.rubric }}"
    assert "${{ inputs." not in grade["run"]  # inputs never spliced into shell code
    upload = steps[-1]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["if"] == "always()"
    assert "junit.xml" in upload["with"]["path"]
    out_dir = grade["env"]["INPUT_OUTPUT_DIR"]
    assert f"{out_dir}/junit.xml" in upload["with"]["path"]
    assert action["outputs"]["grade"]["value"] == "${{ steps.grade.outputs.grade }}"
    assert action["outputs"]["score"]["value"] == "${{ steps.grade.outputs.score }}"
    assert os.access(STEP, os.X_OK)


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
