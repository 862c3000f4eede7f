"""Line coverage of the app's code by the submission's own test suite, measured by the grader's coverage.py setup."""

from __future__ import annotations

import json
import tempfile
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
        data = json.loads(path.read_text(encoding="utf-8"))
        files = {}
        for name, entry in data["files"].items():
            rel = Path(name).relative_to(root).as_posix() if Path(name).is_absolute() else name
            files[rel] = float(entry["summary"]["percent_covered"])
        return Measured(float(data["totals"]["percent_covered"]), files)
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    with tempfile.TemporaryDirectory(prefix="redis-grader-coverage-") as tmp:
        rc = Path(tmp) / "coveragerc"
        rc.write_text(rcfile(source, Path(tmp) / "data"), encoding="utf-8")
        # The whole suite runs (no -x): a failing test is quality.tests' to judge, not a reason to measure less.
        run = await ctx.run([ctx.python, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest", "-q",
                             "-p", "no:cacheprovider"], timeout=ctx.settings.timeout, cwd=cwd)
        evidence: dict[str, object] = {"threshold_percent": threshold, "measured": source.relative_to(root).as_posix()
                                       or ".", "output_tail": _tail(run.output)}
        if run.timed_out:
            return failed(f"the test suite did not finish within {ctx.settings.timeout:g} s under coverage",
                          **evidence)
        if "No module named pytest" in run.output:
            return failed("pytest is not installed in the submission's environment: add pytest to requirements.txt",
                          **evidence)
        if "No module named coverage" in run.output:
            return error("coverage is not installed in the submission's environment (the grader installs it)",
                         **evidence)
        # Run from the temp folder, isolated: nothing of the submission is importable while the report is written.
        report = Path(tmp) / "coverage.json"
        await ctx.run([ctx.python, "-I", "-m", "coverage", "json", f"--rcfile={rc}", "-o", str(report)],
                      timeout=30.0, cwd=Path(tmp))
        measured = read_report(report, root)
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
