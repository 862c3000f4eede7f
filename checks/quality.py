"""Code quality: the harness's own ruff finds no errors, and the submission's own tests pass."""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from checks.suite import SUITE_TIMEOUT, find_test_files, suite_run
from grader.api import CheckContext, CheckOutcome, CheckSettings, check, error, failed, more_text, passed, python_files

MAX_FINDINGS = 20
# `path:line:col: CODE message` in ruff's concise output.
_FINDING = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")
# pytest's exit codes.
_NO_TESTS_COLLECTED = 5
_OUTPUT_TAIL = 30
HINT_WRITE_TESTS = ("Write tests of your own: a tests/test_api.py whose test_* functions call your endpoints "
                    "(httpx.AsyncClient with ASGITransport, or FastAPI's TestClient) and assert what they answer.")


def _tail(output: str, lines: int = _OUTPUT_TAIL) -> list[str]:
    return output.rstrip().splitlines()[-lines:]


def ruff_bin() -> str | None:
    """The ruff executable installed with the harness (pinned with redis-grader). Never `python -m ruff`:
    with the submission as the working directory, a `ruff/` package of the student's would be imported."""
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        return shutil.which("ruff")
    try:
        return str(find_ruff_bin())
    except FileNotFoundError:
        return None


@dataclass(frozen=True, kw_only=True)
class LintSettings(CheckSettings):
    select: tuple[str, ...] = ("E4", "E7", "E9", "F")  # ruff's rules, named by the rubric


@check("quality.lint", title="ruff check finds no errors", level="advanced", timeout=60.0, isolated=True,
       settings=LintSettings,
       requirement='`ruff check` with the rules {select} finds nothing in your Python files (`# noqa` comments and ruff settings of your own are ignored)')
async def lint(ctx: CheckContext[LintSettings]) -> CheckOutcome:
    select = list(ctx.settings.select)
    rules = ",".join(select)
    root = ctx.workspace.root
    # The files every reader of the submission's code reads (no virtualenvs, vendored or generated files),
    # named explicitly: ruff's own file discovery would follow its defaults and the submission's excludes.
    files = [path.relative_to(root).as_posix() for path in python_files(root)]
    if not files:
        return failed("no Python file to check: the submission has no .py files outside virtualenvs, "
                      "hidden folders and generated files", rules=select)
    ruff = ruff_bin()
    if ruff is None:
        return error("ruff is not installed with the grader (pip install redis-grader installs it)")
    # The rubric's rules and nothing of the submission's: no configuration (--isolated ignores its
    # pyproject.toml / ruff.toml) and no suppression comments in its code (--ignore-noqa). Run from the
    # submission's root, so the findings name paths the student recognises; `--` so that a file named
    # like an option stays a file.
    argv = [ruff, "check", "--no-cache", "--isolated", "--ignore-noqa", "--no-fix", "--select", rules,
            "--output-format", "concise", "--", *files]
    run = await ctx.run(argv, timeout=ctx.settings.timeout, cwd=root)
    findings = [line.strip() for line in run.output.splitlines() if _FINDING.match(line.strip())]
    evidence: dict[str, object] = {"rules": select, "files_checked": len(files), "findings": findings[:MAX_FINDINGS]}
    if len(findings) > MAX_FINDINGS:
        evidence["findings"] = [*findings[:MAX_FINDINGS], more_text(len(findings) - MAX_FINDINGS)]
    if run.timed_out:
        return error("ruff did not finish in time", output_tail=_tail(run.output))
    if run.returncode == 0:
        return passed(f"ruff check ({rules}) found no errors in {len(files)} file(s)", **evidence)
    if run.returncode == 1 and findings:
        return failed(f"ruff check ({rules}) found {len(findings)} error(s), first: {findings[0]}", **evidence)
    # Exit code 2 (or 1 with nothing parsed): ruff itself failed, which says nothing about the submission.
    return error(f"ruff could not run (exit code {run.returncode})", output_tail=_tail(run.output))


# pytest's last line: "5 passed in 0.90s", "1 passed, 4 skipped in 0.2s", "5 skipped in 0.17s".
_SUMMARY = re.compile(r"^=*\s*(\d+ \w+.* in [\d.]+s\b.*?)\s*=*$")
_PASSED = re.compile(r"\b[1-9]\d* passed\b")


def _summary(output: str) -> str | None:
    """pytest's summary line (its last), or None when the output has none."""
    return next((m.group(1) for line in reversed(_tail(output)) if (m := _SUMMARY.match(line.strip()))), None)


def no_tests_evidence(root: Path) -> dict[str, object]:
    """What was searched, and the Python files there are instead: a student sees why none counted as a test."""
    files = [path.relative_to(root).as_posix() for path in python_files(root)]
    return {"looked_for": "test_*.py and *_test.py outside virtualenvs, hidden folders and generated files",
            "python_files": files[:20] or ["(none)"]}


# Its tests run against the harness's Redis through REDIS_URL; an app that ignores REDIS_URL would test against
# whatever happens to listen on localhost:6379, and the verdict would depend on the machine.
@check("quality.tests", title="The submission's own pytest suite passes", level="advanced", timeout=SUITE_TIMEOUT,
       requires=("app.uses_redis_url",), isolated=True,
       requirement='Your own pytest suite (`python -m pytest`, with `pytest` in your requirements) has tests and passes against the Redis at `REDIS_URL`')
async def tests(ctx: CheckContext) -> CheckOutcome:
    root = ctx.workspace.root
    if not find_test_files(root):
        # The course asks for tests: a submission without any has not met that part of the assignment.
        return failed("the submission has no tests of its own (no test_*.py or *_test.py file)",
                      hint=HINT_WRITE_TESTS, **no_tests_evidence(root))
    # The one run of the suite this grading makes (under coverage, shared with quality.coverage): the whole suite,
    # so a failure is reported with every other test's result too.
    suite = await suite_run(ctx)
    evidence = {
        "command": suite.command,
        "test_files": [f.relative_to(root).as_posix() for f in suite.test_files][:20],
        "exit_code": suite.returncode,
        "output_tail": _tail(suite.output),
    }
    if suite.timed_out:
        return failed(f"the test suite did not finish within {ctx.settings.timeout:g} s", **evidence)
    if suite.returncode == 0:
        summary = _summary(suite.output)
        if summary is not None and not _PASSED.search(summary):  # every test skipped, deselected or xfailed
            return failed(f"none of the submission's tests ran and passed: {summary}", hint=HINT_WRITE_TESTS,
                          **evidence)
        return passed(f"the submission's tests pass: {summary or 'passed'}", **evidence)
    if suite.missing_module == "pytest":
        return failed("pytest is not installed in the submission's environment: add pytest to requirements.txt",
                      **evidence)
    if suite.missing_module == "coverage":  # the suite runs under it, and the grader installs it: not the student's
        return error("coverage is not installed in the submission's environment (the grader installs it)",
                     **evidence)
    if suite.returncode == _NO_TESTS_COLLECTED:
        return failed("pytest collected no tests from the submission's test files (no test_* functions?)",
                      hint=HINT_WRITE_TESTS, **evidence)
    summary = next((line for line in reversed(_tail(suite.output)) if "failed" in line or "error" in line.lower()),
                   f"exit code {suite.returncode}")
    return failed(f"the submission's tests fail: {summary.strip('= ')}", **evidence)
