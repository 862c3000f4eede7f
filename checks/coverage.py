"""Line coverage of the app's code by the submission's own test suite, measured by the grader's coverage.py setup."""

from __future__ import annotations

from dataclasses import dataclass

from checks.quality import HINT_WRITE_TESTS, no_tests_evidence
from checks.suite import SUITE_TIMEOUT, find_test_files, suite_run
from grader.api import CheckContext, CheckOutcome, CheckSettings, check, error, failed, passed

LEAST_COVERED = 5  # files named in the evidence
_OUTPUT_TAIL = 15


@dataclass(frozen=True, kw_only=True)
class CoverageSettings(CheckSettings):
    threshold: float = 70.0  # percent of the app's statements the suite must run


def _tail(output: str) -> list[str]:
    return output.rstrip().splitlines()[-_OUTPUT_TAIL:]


@check("quality.coverage", title="The submission's own tests cover enough of the app's code", level="advanced",
       timeout=SUITE_TIMEOUT, requires=("app.uses_redis_url",), isolated=True, settings=CoverageSettings,
       requirement="Your own tests cover at least {threshold} % of the lines of your app's code (measured by the grader with coverage.py)")
async def coverage(ctx: CheckContext[CoverageSettings]) -> CheckOutcome:
    root = ctx.workspace.root
    if not find_test_files(root):
        return failed("the submission has no tests of its own, so they cover none of its code", hint=HINT_WRITE_TESTS,
                      **no_tests_evidence(root))
    threshold = ctx.settings.threshold
    # The one run of the suite this grading makes (shared with quality.tests): the whole suite, so a failing test
    # (quality.tests' to judge) does not stop the measure.
    suite = await suite_run(ctx)
    evidence: dict[str, object] = {"threshold_percent": threshold,
                                   "measured": ctx.app_dir.relative_to(root).as_posix() or ".",
                                   "output_tail": _tail(suite.output)}
    if suite.timed_out:
        return failed(f"the test suite did not finish within {ctx.settings.timeout:g} s under coverage", **evidence)
    if suite.missing_module == "pytest":
        return failed("pytest is not installed in the submission's environment: add pytest to requirements.txt",
                      **evidence)
    if suite.missing_module == "coverage":
        return error("coverage is not installed in the submission's environment (the grader installs it)",
                     **evidence)
    measured = suite.measured
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
