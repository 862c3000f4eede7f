"""`grader batch`: grade every submission folder of a class, each in its own `grader check` subprocess.

Why subprocesses: a submission that crashes the harness, leaks a thread or hangs forever must cost only
its own row. Each child runs in its own session, so a wall-clock timeout can stop it (SIGINT first, so
it stops its app, Redis and container itself; SIGKILL to what is left after a grace) without touching
the batch or the other children.

Layout of RESULTS_DIR (one folder per submission, named after its folder):

    RESULTS_DIR/<name>/result.json   the result document; written last and atomically, so its presence
                                     with status "graded" means "done" when a run is resumed
    RESULTS_DIR/<name>/.graded-with.json  what it was graded with (rubric, --only, grader version): a stored
                                     result made otherwise is graded again, never reused
    RESULTS_DIR/<name>/report.html, report.md, junit.xml, grader.log (the child's own output)
    RESULTS_DIR/gradebook.csv, RESULTS_DIR/index.html   over every result.json found
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from grader import __version__
from grader import rubric as rubrics
from grader.errors import UsageError
from grader.reporters import write_gradebook, write_reports
from grader.reporters._common import Report, fmt_num, read_result
from grader.reporters._templates import environment as template_environment
from grader.result import Submission, failed_to_grade
from grader.rubric import GRADE_ORDER
from grader.sandbox import MARKER_VAR
from grader.services import remove_orphaned_containers

RESULT = "result.json"
GRADED_WITH = ".graded-with.json"
REPORTS = {"html": "report.html", "markdown": "report.md", "junit": "junit.xml"}
LOG = "grader.log"
PARTIAL = ".check-result.json"  # where the child writes; renamed to RESULT only once it is complete
GRADEBOOK = "gradebook.csv"
INDEX = "index.html"
NOT_GRADED = "not graded"
BATCH_VAR = "REDIS_GRADER_BATCH"

# The child runs `grader check` with SIGINT restored to Python's default handler: a shell that starts
# the batch in the background sets SIGINT to "ignore", children inherit that, and then the graceful
# stop (KeyboardInterrupt -> every context manager cleans up) would silently turn into a hard kill.
_CHILD = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "from grader.cli import main\n"
    "main(['check', *sys.argv[1:]], prog_name='grader')\n"
)


@dataclass(frozen=True)
class BatchOptions:
    out: Path
    jobs: int = 1
    timeout: float = 600.0  # wall clock for one submission, environment build included
    grace: float = 20.0  # a stopped child gets this long to clean up before SIGKILL
    rubric: str = "redis-module"
    redis: str = "auto"
    redis_image: str = "redis:7-alpine"
    env: str = "isolated"
    start_timeout: float = 30.0
    docs_url: str | None = None
    only: tuple[str, ...] = ()
    retry_errors: bool = False
    fresh: bool = False


@dataclass(frozen=True)
class SubmissionDir:
    name: str  # the folder's name: also the name of its results folder and its gradebook row
    path: Path


@dataclass
class Plan:
    submissions: list[SubmissionDir]
    to_grade: list[SubmissionDir]
    kept: list[SubmissionDir]  # already done by an earlier run
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Finished:
    """One submission the batch has just finished (for the progress display)."""

    name: str
    status: str  # "graded" | "error"
    grade: str | None
    score: float | None
    error: str | None

    @property
    def line(self) -> str:
        if self.status == "graded":
            return f"{self.name}: {self.grade} ({_num(self.score)})"
        return f"{self.name}: not graded - {self.error}"


@dataclass
class BatchSummary:
    total: int  # submissions in SUBMISSIONS_DIR
    graded_now: int = 0
    errors_now: int = 0
    kept: int = 0
    interrupted: bool = False
    not_graded: list[str] = field(default_factory=list)  # names whose stored result is status "error"
    gradebook: Path | None = None
    index: Path | None = None

    @property
    def done(self) -> int:
        return self.graded_now + self.errors_now + self.kept


# --------------------------------------------------------------------------------------------- planning


def find_submissions(root: Path, out: Path) -> tuple[list[SubmissionDir], list[str]]:
    """Every immediate, non-hidden sub-folder of `root`, by name; notes for what was passed over."""
    if not root.exists():
        raise UsageError(f"submissions folder '{root}' does not exist")
    if not root.is_dir():
        raise UsageError(f"'{root}' is not a folder")
    root_resolved, out_resolved = root.resolve(), out.resolve()
    if out_resolved == root_resolved:
        raise UsageError("--out must not be the submissions folder itself")
    found: list[SubmissionDir] = []
    notes: list[str] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            notes.append(f"ignored {entry.name}: not a folder")
            continue
        if entry.resolve() == out_resolved:
            notes.append(f"ignored {entry.name}: it is the results folder")
            continue
        found.append(SubmissionDir(entry.name, entry))
    if not found:
        raise UsageError(f"no submission folders in '{root}' (each sub-folder is one submission)")
    return found, notes


def stored_status(result_path: Path) -> str | None:
    """"graded" or "error" for a complete result document, None when missing or unreadable."""
    try:
        doc = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    status = doc.get("status") if isinstance(doc, dict) else None
    return status if status in ("graded", "error") else None


def grading_settings(options: BatchOptions) -> dict[str, Any]:
    """Everything besides the submission that a result depends on. The rubric counts by its content, so an
    edited rubric file is a change too; --redis and --env are not here, as they must not change a grade."""
    try:
        rubric = hashlib.sha256(rubrics.resolve(options.rubric).read_bytes()).hexdigest()
    except (UsageError, OSError):  # grading will say what is wrong with it
        rubric = options.rubric
    return {"grader": __version__, "rubric_sha256": rubric, "only": sorted(options.only),
            "docs_url": options.docs_url}


def graded_with(folder: Path) -> dict[str, Any] | None:
    """The settings a stored result was graded with, or None when unknown (then it is not reused)."""
    try:
        settings = json.loads((folder / GRADED_WITH).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return settings if isinstance(settings, dict) else None


def plan(submissions_dir: Path, options: BatchOptions) -> Plan:
    submissions, notes = find_submissions(submissions_dir, options.out)
    to_grade, kept = [], []
    settings = grading_settings(options)
    stale = 0
    for sub in submissions:
        folder = options.out / sub.name
        status = None if options.fresh else stored_status(folder / RESULT)
        if status is not None and graded_with(folder) != settings:
            stale += 1
            status = None
        if status == "graded" or (status == "error" and not options.retry_errors):
            kept.append(sub)
        else:
            to_grade.append(sub)
    if stale:
        notes.append(f"grading {stale} stored result(s) again: they were made with another rubric, --only, "
                     "--docs-url or grader version")
    if kept:
        errors = sum(1 for s in kept if stored_status(options.out / s.name / RESULT) == "error")
        how = "--fresh grades them again" + (", --retry-errors the ones not graded" if errors else "")
        notes.append(f"kept {len(kept)} result(s) from an earlier run ({how})")
    return Plan(submissions, to_grade, kept, notes)


def cap_jobs(jobs: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(jobs, cores))


# --------------------------------------------------------------------------------------------- one submission


def check_argv(sub: SubmissionDir, options: BatchOptions, json_path: Path) -> list[str]:
    """The `grader check` command line for one submission (after the interpreter and -c)."""
    rubric = options.rubric
    if Path(rubric).suffix == ".toml" or Path(rubric).exists():
        rubric = str(Path(rubric).resolve())  # the child's cwd is the batch's, but be explicit
    argv = [
        str(sub.path.resolve()),
        "--no-color",
        "--rubric", rubric,
        "--redis", options.redis,
        "--redis-image", options.redis_image,
        "--env", options.env,
        "--start-timeout", f"{options.start_timeout:g}",
        "--json", str(json_path),
    ]  # fmt: skip
    if options.docs_url:
        argv += ["--docs-url", options.docs_url]
    for pattern in options.only:
        argv += ["--only", pattern]
    return argv


def _child_env(token: str) -> dict[str, str]:
    env = dict(os.environ)
    env[BATCH_VAR] = token  # marks the child and whatever inherits its environment (see processes_of)
    # The child must import this very grader, also when it runs from a source checkout and the batch's cwd
    # is elsewhere. An installed grader is importable anyway (and site-packages must not go before stdlib).
    package_root = str(Path(__file__).resolve().parent.parent)
    installed = {str(Path(p).resolve()) for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    if package_root not in installed:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.pop("FORCE_COLOR", None)
    return env


def error_document(sub: SubmissionDir, reason: str, duration_s: float) -> dict[str, Any]:
    """The same shape `grade()` returns when it cannot grade, so the gradebook has a row for it."""
    doc = failed_to_grade(
        Submission(sub.name, str(sub.path.resolve())), None, reason, duration_s=duration_s,
        environment={"runtime": "local", "redis": None},
    )
    doc["error"] = " ".join(reason.split())  # one line, whatever the cause printed
    return doc


def _last_error_line(log_path: Path) -> str | None:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("grader: error: "):
            return line.removeprefix("grader: error: ").strip()
    tail = [line.strip() for line in lines if line.strip()]
    return tail[-1][:300] if tail else None


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _processes() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process, read from /proc."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # comm may hold spaces and parentheses
        with contextlib.suppress(IndexError, ValueError):
            if fields[0] not in ("Z", "X"):
                found[int(entry)] = int(fields[1])
    return found


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return b"\0" + fh.read() + b"\0"
    except OSError:
        return b""


def processes_of(root: int, token: str) -> set[int]:
    """The child `root`, everything below it, and everything that carries its marks: the batch token (the
    child and what inherits its environment, such as a local redis-server) or a sandbox marker found on a
    process of the tree (so an app's grandchild that double-forked away from the tree is found too)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, parent in table.items():
        children.setdefault(parent, []).append(pid)
    tree, todo = set(), [root] if root in table else []
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, []))
    needles = {f"\0{BATCH_VAR}={token}\0".encode()}
    prefix = f"\0{MARKER_VAR}=".encode()
    for pid in tree:
        env = _environ(pid)
        at = env.find(prefix)
        if at >= 0:
            needles.add(env[at : env.index(b"\0", at + 1) + 1])
    me = os.getpid()
    return tree | {pid for pid in table if pid != me and any(n in _environ(pid) for n in needles)}


def sweep(token: str) -> None:
    """After a child has exited: kill anything still carrying its batch token (a local redis-server the
    child failed to stop). Normally there is nothing."""
    needle = f"\0{BATCH_VAR}={token}\0".encode()
    me = os.getpid()
    for pid in _processes():
        if pid != me and needle in _environ(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def kill_tree(proc: subprocess.Popen[bytes], token: str) -> None:
    """SIGKILL the child and everything it started. Its app and Redis run in sessions of their own, so a
    process-group kill would orphan them: freeze everything first (SIGSTOP, until a scan finds nothing new,
    so nothing forks away), then kill what was frozen."""
    frozen: set[int] = set()
    for _ in range(50):
        fresh = processes_of(proc.pid, token) - frozen
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= fresh
    for pid in frozen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    remove_orphaned_containers()  # the child's Redis container, which it had no chance to remove


class Grader:
    """Runs `grader check` subprocesses; stop() interrupts every running one (Ctrl-C)."""

    def __init__(self, options: BatchOptions) -> None:
        self.options = options
        self._stop = threading.Event()  # Ctrl-C: interrupt the running children, start no new ones
        self._hurry = threading.Event()  # a second Ctrl-C: no grace, kill at once

    def stop(self, *, hurry: bool = False) -> None:
        self._stop.set()
        if hurry:
            self._hurry.set()

    def grade(self, sub: SubmissionDir) -> dict[str, Any] | None:
        """Grade one submission and write its files; the result document, or None if the batch was
        interrupted before it finished (then nothing is written, so a resumed run grades it)."""
        if self._stop.is_set():
            return None
        folder = self.options.out / sub.name
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / PARTIAL
        partial.unlink(missing_ok=True)
        started = time.monotonic()
        argv = [sys.executable, "-c", _CHILD, *check_argv(sub, self.options, partial)]
        token = secrets.token_hex(16)
        with open(folder / LOG, "wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_child_env(token),
                start_new_session=True,  # its own process group: Ctrl-C on the terminal is the batch's to relay
            )
            try:
                code, timed_out = self._wait(proc, started, token)
            finally:
                sweep(token)
        duration = time.monotonic() - started
        if code is None and not timed_out:
            partial.unlink(missing_ok=True)
            return None
        doc = self._read_result(sub, partial, folder / LOG, code, timed_out, duration)
        partial.unlink(missing_ok=True)
        write_submission(folder, doc, grading_settings(self.options))
        return doc

    def _wait(self, proc: subprocess.Popen[bytes], started: float, token: str) -> tuple[int | None, bool]:
        """(exit code, timed out). The code is None when the batch was interrupted."""
        deadline = started + self.options.timeout
        while True:
            try:
                return proc.wait(timeout=0.2), False
            except subprocess.TimeoutExpired:
                pass
            if self._stop.is_set():
                self._end(proc, token)
                return None, False
            if time.monotonic() >= deadline:
                self._end(proc, token)
                return proc.returncode, True

    def _end(self, proc: subprocess.Popen[bytes], token: str) -> None:
        """SIGINT (the child's KeyboardInterrupt path stops its app, Redis and container), then SIGKILL
        the whole tree after the grace."""
        if not self._hurry.is_set():
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGINT)
            deadline = time.monotonic() + self.options.grace
            while time.monotonic() < deadline and not self._hurry.is_set():
                try:
                    proc.wait(timeout=0.2)
                    return
                except subprocess.TimeoutExpired:
                    continue
        if proc.poll() is None:
            kill_tree(proc, token)

    def _read_result(
        self, sub: SubmissionDir, partial: Path, log: Path, code: int | None, timed_out: bool, duration: float
    ) -> dict[str, Any]:
        if timed_out:
            return error_document(sub, f"grading did not finish within {self.options.timeout:g} s and was stopped", duration)
        doc: Any = None
        if partial.is_file():
            try:
                doc = json.loads(partial.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                return error_document(sub, f"the grader wrote an unreadable result: {exc}", duration)
        if isinstance(doc, dict) and doc.get("status") in ("graded", "error"):
            submission = doc.get("submission") if isinstance(doc.get("submission"), dict) else {}
            doc["submission"] = {**submission, "name": sub.name}  # the folder name is the batch's key
            if doc["status"] == "error" and not doc.get("error"):
                doc["error"] = f"the grader {_exit_text(code or 0)} without saying why"
            return doc
        why = _last_error_line(log)
        reason = f"the grader {_exit_text(code if code is not None else -9)} without a result"
        return error_document(sub, f"{reason}: {why}" if why else reason, duration)


def write_submission(folder: Path, doc: dict[str, Any], settings: dict[str, Any]) -> None:
    """The reports first, result.json last and atomically (tmp + rename): a run stopped at any instant
    leaves either no result.json or a complete one, never a half file that a resumed run would trust."""
    write_reports(doc, **{kind: folder / name for kind, name in REPORTS.items()})
    (folder / GRADED_WITH).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    tmp = folder / f".{RESULT}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / RESULT)


# --------------------------------------------------------------------------------------------- the batch


def run_batch(
    submissions_dir: Path,
    options: BatchOptions,
    *,
    on_plan: Callable[[Plan], None] | None = None,
    on_done: Callable[[Finished], None] | None = None,
) -> BatchSummary:
    """Grade what the plan says, `options.jobs` at a time, then write the gradebook and index.html.

    Ctrl-C (KeyboardInterrupt in the calling thread) stops every running child cleanly and returns a
    summary with interrupted=True; the overview is still written from what is done.
    """
    the_plan = plan(submissions_dir, options)
    if on_plan:
        on_plan(the_plan)
    summary = BatchSummary(total=len(the_plan.submissions), kept=len(the_plan.kept))
    options.out.mkdir(parents=True, exist_ok=True)
    grader = Grader(options)
    pool = ThreadPoolExecutor(max_workers=cap_jobs(options.jobs), thread_name_prefix="grader-batch")
    pending: set[Future[dict[str, Any] | None]] = set()
    try:
        for sub in the_plan.to_grade:
            pending.add(pool.submit(grader.grade, sub))
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                _count(future.result(), summary, on_done)
    except KeyboardInterrupt:
        summary.interrupted = True
        grader.stop()
        for future in pending:
            future.cancel()
        # Children are stopping (each gets the grace to clean up); a second Ctrl-C kills them at once.
        while True:
            try:
                pool.shutdown(wait=True)
                break
            except KeyboardInterrupt:
                grader.stop(hurry=True)
        for future in pending:
            if not future.cancelled():
                _count(future.result(), summary, on_done)
    except BaseException:  # e.g. the results folder became unwritable: stop the others, then report it
        grader.stop()
        for future in pending:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
    summary.gradebook, summary.index = write_overview(options.out)
    names = {s.name for s in the_plan.submissions}
    summary.not_graded = [name for name, doc in collect_results(options.out) if name in names and doc.get("status") != "graded"]
    return summary


def _count(doc: dict[str, Any] | None, summary: BatchSummary, on_done: Callable[[Finished], None] | None) -> None:
    if doc is None:  # interrupted before it finished: nothing written
        return
    graded = doc.get("status") == "graded"
    if graded:
        summary.graded_now += 1
    else:
        summary.errors_now += 1
    if on_done:
        sub = doc.get("submission") or {}
        on_done(Finished(str(sub.get("name")), "graded" if graded else "error", doc.get("grade"), doc.get("score"), doc.get("error")))


# --------------------------------------------------------------------------------------------- overview


def collect_results(out: Path) -> list[tuple[str, dict[str, Any]]]:
    """(folder name, document) for every complete result.json under `out`, sorted by name."""
    found = []
    for path in sorted(out.glob(f"*/{RESULT}"), key=lambda p: p.parent.name):
        if path.parent.name.startswith("."):
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(doc, dict):
            found.append((path.parent.name, doc))
    return found


@dataclass
class Row:
    folder: str
    report: Report
    href: str  # relative link to its report.html ("" when there is none)


@dataclass
class CheckStats:
    id: str
    title: str
    category: str
    order: int  # first-seen (rubric) position, the tie-breaker
    counts: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0, "error": 0, "skipped": 0})
    not_counted: int = 0  # skipped as not applicable (--only, no such endpoint): left out of the rate

    @property
    def ran(self) -> int:
        """Submissions where the check ran and decided. Skips (the app did not start, a check it needs
        failed) are left out: they say nothing about this check, and would rank every check alike."""
        return self.counts["passed"] + self.counts["failed"] + self.counts["error"]

    @property
    def rate(self) -> float | None:
        return self.counts["passed"] / self.ran if self.ran else None

    @property
    def percent(self) -> str:
        return "-" if self.rate is None else f"{round(100 * self.rate)}%"


@dataclass
class Overview:
    title: str
    rows: list[Row]
    distribution: list[tuple[str, int]]  # (grade or "not graded", count), every band even when 0
    checks: list[CheckStats]  # hardest first: what the class struggles with
    mean: float | None
    median: float | None
    generated: str

    @property
    def graded(self) -> int:
        return sum(1 for r in self.rows if r.report.graded)

    def share(self, count: int) -> int:
        """A count as a whole percentage of all submissions (for the distribution bars)."""
        return round(100 * count / len(self.rows)) if self.rows else 0


def build_overview(results: list[tuple[str, dict[str, Any]]], out: Path | None = None) -> Overview:
    rows: list[Row] = []
    stats: dict[str, CheckStats] = {}
    grades: dict[str, int] = {g: 0 for g in GRADE_ORDER}
    titles: set[str] = set()
    for folder, doc in results:
        report = read_result(doc)
        report.name = folder
        has_report = out is None or (out / folder / REPORTS["html"]).is_file()
        rows.append(Row(folder, report, f"{quote(folder)}/{REPORTS['html']}" if has_report else ""))
        if not report.graded:
            grades[NOT_GRADED] = grades.get(NOT_GRADED, 0) + 1
            continue
        titles.add(report.rubric_title)
        grades[report.grade or "?"] = grades.get(report.grade or "?", 0) + 1
        for check in report.checks:
            entry = stats.setdefault(check.id, CheckStats(check.id, check.title, check.category, len(stats)))
            if check.outcome == "skipped" and not check.applicable:
                entry.not_counted += 1
            else:
                entry.counts[check.outcome] += 1
    grades.setdefault(NOT_GRADED, 0)
    scores = [r.report.score for r in rows if r.report.graded and r.report.score is not None]
    ordered = sorted(stats.values(), key=lambda s: (s.rate is None, s.rate if s.rate is not None else 0.0, s.order))
    return Overview(
        title=" / ".join(sorted(titles)) or "redis-grader",
        rows=rows,
        distribution=list(grades.items()),
        checks=ordered,
        mean=round(statistics.fmean(scores), 2) if scores else None,
        median=round(statistics.median(scores), 2) if scores else None,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def render_index(overview: Overview) -> str:
    return template_environment().get_template("batch.html.j2").render(batch=overview)


def write_overview(out: Path) -> tuple[Path, Path]:
    """gradebook.csv and index.html over every result.json in `out` (tmp + rename, like result.json)."""
    results = collect_results(out)
    gradebook, index = out / GRADEBOOK, out / INDEX
    with _atomic(gradebook) as tmp:
        write_gradebook([doc for _, doc in results], tmp)
    with _atomic(index) as tmp:
        tmp.write_text(render_index(build_overview(results, out)), encoding="utf-8")
    return gradebook, index


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[Path]:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _num(value: Any) -> str:
    return fmt_num(value) or "-"
