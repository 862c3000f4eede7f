"""Line coverage of the app's code by the submission's own test suite, measured by the grader's coverage.py setup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from checks.quality import HINT_WRITE_TESTS, find_test_files, no_tests_evidence, tests_dir
from grader.api import CheckContext, CheckOutcome, CheckSettings, check, error, failed, passed

MAX_REPORT_BYTES = 5_000_000  # coverage's JSON report is data the grader reads: a bigger one is not trusted
LEAST_COVERED = 5  # files named in the evidence
_OUTPUT_TAIL = 15


@dataclass(frozen=True, kw_only=True)
class CoverageSettings(CheckSettings):
    threshold: float = 70.0  # percent of the app's statements the suite must run


def rcfile(source: Path, data_file: Path) -> str:
    """The grader's own coverage configuration: the app's folder, the test files left out (a test always runs
    itself), the data kept outside the submission. Given with --rcfile, it is the only configuration coverage
    reads, so the submission's .coveragerc or [tool.coverage] cannot move the number."""
    omit = [f"{source}/*{pattern}" for pattern in ("test_*.py", "_test.py", "conftest.py", "tests/*")]
    return "\n".join([
        "[run]",
        f"source = {source}",
        f"data_file = {data_file}",
        "branch = False",
        "omit =",
        *(f"    {pattern}" for pattern in omit),
        "",
    ])


@dataclass
class Measured:
    percent: float
    files: dict[str, float]  # relative path -> percent covered


def read_report(path: Path, root: Path) -> Measured | None:
    """coverage's JSON report (never executed: parsed as data), capped in size; None when absent or unreadable."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return None
        return parse_report(path.read_text(encoding="utf-8"), root)
    except OSError:
        return None


def parse_report(text: str, root: Path) -> Measured | None:
    """The JSON report's text, parsed as data; None when it is too big or not a coverage report."""
    if len(text) > MAX_REPORT_BYTES:
        return None
    try:
        data = json.loads(text)
        files = {}
        for name, entry in data["files"].items():
            rel = Path(name).relative_to(root).as_posix() if Path(name).is_absolute() else name
            files[rel] = float(entry["summary"]["percent_covered"])
        return Measured(float(data["totals"]["percent_covered"]), files)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


REPORT_MARKER = "redis-grader-coverage-report: "
# Runs in the submission's environment (in its runtime: the local sandbox or a container), never in the grader:
# coverage's files live in a temporary folder there, and only the tail of the suite's output and the JSON report
# come back, on standard output. Isolated (-I) itself; the suite it runs imports the submission as usual.
MEASURE = r"""
import os, subprocess, sys, tempfile
rc_text, marker = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory(prefix="redis-grader-coverage-") as tmp:
    rc = os.path.join(tmp, "coveragerc")
    with open(rc, "w") as fh:
        fh.write(rc_text.replace("@DATA@", os.path.join(tmp, "data")))
    with open(os.path.join(tmp, "output"), "w+") as out:
        code = subprocess.call([sys.executable, "-m", "coverage", "run", "--rcfile=" + rc, "-m", "pytest", "-q",
                                "-p", "no:cacheprovider"], stdout=out, stderr=subprocess.STDOUT)
        out.seek(0)
        sys.stdout.write("".join(out.readlines()[-40:]))
    report = os.path.join(tmp, "coverage.json")
    subprocess.call([sys.executable, "-I", "-m", "coverage", "json", "--rcfile=" + rc, "-o", report], cwd=tmp,
                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    if os.path.exists(report):
        with open(report) as fh:
            sys.stdout.write("\n" + marker + fh.read().replace("\n", " ") + "\n")
sys.exit(code)
"""


def report_in(output: str, root: Path) -> Measured | None:
    lines = [line for line in output.splitlines() if line.startswith(REPORT_MARKER)]
    return parse_report(lines[-1][len(REPORT_MARKER):], root) if lines else None


def _tail(output: str) -> list[str]:
    return output.rstrip().splitlines()[-_OUTPUT_TAIL:]


@check("quality.coverage", title="The submission's own tests cover enough of the app's code", level="advanced",
       timeout=150.0, requires=("app.uses_redis_url",), isolated=True, settings=CoverageSettings,
       requirement="Your own tests cover at least {threshold} % of the lines of your app's code (measured by the grader with coverage.py)")
async def coverage(ctx: CheckContext[CoverageSettings]) -> CheckOutcome:
    root = ctx.workspace.root
    found = find_test_files(root)
    if not found:
        return failed("the submission has no tests of its own, so they cover none of its code", hint=HINT_WRITE_TESTS,
                      **no_tests_evidence(root))
    threshold = ctx.settings.threshold
    source = ctx.app_dir  # the folder the app runs from: its package and modules, the tests left out
    cwd = tests_dir(root, ctx.app_dir, found)
    # The whole suite runs (no -x): a failing test is quality.tests' to judge, not a reason to measure less.
    run = await ctx.run([ctx.python, "-I", "-c", MEASURE, rcfile(source, Path("@DATA@")), REPORT_MARKER],
                        timeout=ctx.settings.timeout, cwd=cwd)
    output = "\n".join(line for line in run.output.splitlines() if not line.startswith(REPORT_MARKER))
    evidence: dict[str, object] = {"threshold_percent": threshold, "measured": source.relative_to(root).as_posix()
                                   or ".", "output_tail": _tail(output)}
    if run.timed_out:
        return failed(f"the test suite did not finish within {ctx.settings.timeout:g} s under coverage", **evidence)
    if "No module named pytest" in output:
        return failed("pytest is not installed in the submission's environment: add pytest to requirements.txt",
                      **evidence)
    if "No module named coverage" in output:
        return error("coverage is not installed in the submission's environment (the grader installs it)",
                     **evidence)
    measured = report_in(run.output, root)
    if measured is None or not measured.files:
        return failed("the test suite ran none of the app's code (coverage measured nothing)", **evidence)
    least = sorted(measured.files.items(), key=lambda item: item[1])[:LEAST_COVERED]
    evidence = {"percent": round(measured.percent, 1), **evidence,
                "least_covered": [f"{name}: {percent:.0f}%" for name, percent in least]}
    del evidence["output_tail"]
    summary = f"the submission's tests cover {measured.percent:.1f}% of the app's lines"
    if measured.percent >= threshold:
        return passed(f"{summary} (at least {threshold:g}% expected)", **evidence)
    return failed(f"{summary}, below the expected {threshold:g}%; least covered: {least[0][0]} "
                  f"({least[0][1]:.0f}%)", **evidence)
