"""The submission's own test suite, run once per grading under the grader's coverage.py setup: quality.tests judges
whether it passes, quality.coverage how much of the app it runs, each from the same run (ctx.once)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grader.api import CheckContext, is_test_file, parse_json, python_files

MAX_REPORT_BYTES = 5_000_000  # coverage's JSON report is data the grader reads: a bigger one is not trusted
PYTEST_ARGS = ("-q", "-p", "no:cacheprovider")  # the whole suite: no -x, coverage measures every test
REPORT_MARKER = "redis-grader-coverage-report: "
OUTPUT_LINES = 40  # of the suite's output, the tail that comes back
# The default timeout of both checks that judge the suite: equal, so that by default they share one run.
SUITE_TIMEOUT = 150.0
# The course's libraries, imported before coverage starts when the submission imports them (see RUN_SUITE).
PRELOADED = ("fastapi", "redis")


def find_test_files(root: Path) -> list[Path]:
    """The submission's own test modules (test_*.py, *_test.py), by the same rule as every reader of its code."""
    return list(python_files(root, keep=is_test_file))


def tests_dir(root: Path, app_dir: Path, tests: list[Path]) -> Path:
    """Where to run pytest: the app's folder when the tests live inside it (their `from app.main import app`
    resolves from there, as `python -m pytest` puts the working directory on sys.path); otherwise the
    submission's root, where its pytest configuration is."""
    if all(app_dir == t.parent or app_dir in t.parents for t in tests):
        return app_dir
    return root


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
        data = parse_json(text)
        files = {}
        for name, entry in data["files"].items():
            rel = Path(name).relative_to(root).as_posix() if Path(name).is_absolute() else name
            files[rel] = float(entry["summary"]["percent_covered"])
        return Measured(float(data["totals"]["percent_covered"]), files)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# Runs in the submission's environment as the suite's own process: pytest, with coverage started once pytest and
# its plugins are loaded and before any conftest, test module or plugin of the submission's is imported (where
# pytest-cov starts it too). What the grader needs of the measurement is the app's lines, and none of the app is
# imported before then. First it imports the libraries of PRELOADED the submission imports itself: the app imports
# them as it always would, they are only found already loaded, and their start-up (FastAPI's and pydantic's are
# most of a suite's processor time) no longer runs under coverage's tracer, which would double it. An import that
# fails or warns here fails or warns the same way again when the submission imports it, inside its own tests.
RUN_SUITE = r"""
import os, sys
import coverage
import pytest
rc, preload = sys.argv[1], [name for name in sys.argv[2].split(",") if name]
sys.path[0] = os.getcwd()  # as `python -m pytest` has it

class StartCoverage:
    measured = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_load_initial_conftests(self, early_config, parser, args):
        for name in preload:
            try:
                __import__(name)
            except Exception:
                pass
        self.measured = coverage.Coverage(config_file=rc)
        self.measured.start()

plugin = StartCoverage()
args = sys.argv[3:]
# A suite set up for pytest-cov (`addopts = --cov=app`) would start a second coverage beside this one, and the two
# stop each other's tracer (pytest-cov fails the run). --no-cov keeps its options valid and leaves coverage here.
from importlib.util import find_spec
if find_spec("pytest_cov") is not None:
    args.append("--no-cov")
try:
    code = pytest.main(args, plugins=[plugin])
finally:
    if plugin.measured is not None:
        plugin.measured.stop()
        plugin.measured.save()
sys.exit(int(code))
"""

# Runs in the submission's environment (in its runtime: the local sandbox or a container), never in the grader:
# coverage's files live in a temporary folder there, and only the tail of the suite's output and the JSON report
# come back, on standard output. Isolated (-I) itself, so the coverage it imports to write the report is the
# environment's, never a module of the submission's; the suite (RUN_SUITE, a process of its own) imports the
# submission as usual. The report is written from the temporary folder, so it names the measured files by their
# absolute paths.
MEASURE = r"""
import os, subprocess, sys, tempfile
rc_text, marker, lines, run_suite, preload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
pytest_args = sys.argv[6:]
with tempfile.TemporaryDirectory(prefix="redis-grader-coverage-") as tmp:
    rc = os.path.join(tmp, "coveragerc")
    with open(rc, "w") as fh:
        fh.write(rc_text.replace("@DATA@", os.path.join(tmp, "data")))
    with open(os.path.join(tmp, "output"), "w+") as out:
        code = subprocess.call([sys.executable, "-c", run_suite, rc, preload, *pytest_args],
                               stdout=out, stderr=subprocess.STDOUT)
        out.seek(0)
        # The suite's own lines never pass for the report: whatever it prints, only this script writes the marker.
        sys.stdout.write("".join(line for line in out.readlines()[-lines:] if not line.startswith(marker)))
    report = os.path.join(tmp, "coverage.json")
    here = os.getcwd()
    try:
        os.chdir(tmp)
        import coverage
        measured = coverage.Coverage(config_file=rc)
        measured.load()
        measured.json_report(outfile=report)
    except Exception:
        pass  # no data (the suite ran none of the app) or no coverage: no report, the grader says so
    finally:
        os.chdir(here)
    if os.path.exists(report):
        with open(report) as fh:
            sys.stdout.write("\n" + marker + fh.read().replace("\n", " ") + "\n")
sys.exit(code)
"""


@dataclass(frozen=True)
class SuiteRun:
    returncode: int | None  # pytest's exit code (through coverage run); None when it timed out
    output: str  # the tail of the suite's output, the coverage report's line left out
    timed_out: bool
    measured: Measured | None  # the app's coverage; None when coverage wrote no readable report
    cwd: Path  # where pytest ran: the app's folder or the submission's root (see tests_dir)
    test_files: list[Path]  # the submission's test modules
    command: str  # what ran, as the student would type it

    @property
    def missing_module(self) -> str | None:
        """'pytest' or 'coverage' when the submission's environment lacks it, else None."""
        for module in ("pytest", "coverage"):
            if f"No module named '{module}'" in self.output or f"No module named {module}" in self.output:
                return module
        return None


async def suite_run(ctx: CheckContext) -> SuiteRun:
    """The submission's suite, run once per grading (and per timeout: a rubric that gives the two checks different
    timeouts gets two runs) under coverage, with REDIS_URL at the Redis of the check that started it."""
    timeout = ctx.settings.timeout
    return await ctx.once(("suite", timeout), lambda: _run(ctx, timeout))


async def _run(ctx: CheckContext, timeout: float) -> SuiteRun:
    root = ctx.workspace.root
    found = find_test_files(root)
    cwd = tests_dir(root, ctx.app_dir, found)
    source = ctx.app_dir  # the folder the app runs from: its package and modules, the tests left out
    preload = ",".join(name for name in PRELOADED if name in ctx.facts.libraries)
    argv = [ctx.python, "-I", "-c", MEASURE, rcfile(source, Path("@DATA@")), REPORT_MARKER, str(OUTPUT_LINES),
            RUN_SUITE, preload, *PYTEST_ARGS]
    run = await ctx.run(argv, timeout=timeout, cwd=cwd)
    lines = run.output.splitlines()
    # The report is the script's last line, written after the suite has ended; a marker anywhere else is not it.
    last = next((line for line in reversed(lines) if line.strip()), "")
    report = last[len(REPORT_MARKER):] if last.startswith(REPORT_MARKER) else None
    where = cwd.relative_to(root).as_posix() if cwd != root else "."
    return SuiteRun(
        returncode=run.returncode,
        output="\n".join(line for line in lines if not line.startswith(REPORT_MARKER)),
        timed_out=run.timed_out,
        measured=parse_report(report, root) if report is not None else None,
        cwd=cwd,
        test_files=found,
        command=f"cd {where} && python -m pytest {' '.join(PYTEST_ARGS)} (under coverage)",
    )
