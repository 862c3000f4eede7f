"""`run_batch`: the plan, the supervisor running it `--jobs` at a time, and the class overview at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.reporters import overview
from grader.reporters._common import fmt_num
from grader.tempdirs import sweep_orphaned_tempdirs
from grader.text import printable_line, printable_name

from .plan import BatchOptions, Plan, cap_jobs, plan
from .store import collect_results, forget_stored, make_results_folder
from .supervisor import Grader


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
        """One printable line: the name is the submission's folder's, which may hold any character."""
        name = printable_name(self.name)
        if self.status == "graded":
            return f"{name}: {printable_line(str(self.grade))} ({fmt_num(self.score) or '-'})"
        return f"{name}: not graded - {printable_line(str(self.error))}"


@dataclass
class Progress:
    """How far a batch is, and when it will likely be done: the mean wall time per finished submission so far
    (which already counts the jobs running side by side) times what is left."""

    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def step(self) -> str:
        self.done += 1
        return f"[{self.done}/{self.total}, {self.eta()}]"

    def eta(self) -> str:
        left = self.total - self.done
        if left <= 0:
            return "done"
        if not self.done:
            return "ETA unknown"
        seconds = round((time.monotonic() - self.started) / self.done * left)
        return f"ETA {seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"ETA {seconds}s"


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


def write_overview(out: Path) -> tuple[Path, Path]:
    """gradebook.csv and index.html over every result.json in `out`."""
    return overview.write_overview(out, collect_results(out))


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
    make_results_folder(options.out)
    the_plan = plan(submissions_dir, options)
    if on_plan:
        on_plan(the_plan)
    summary = BatchSummary(total=len(the_plan.submissions), kept=len(the_plan.kept))
    if options.fresh:
        # Earlier results stop counting now, not as each is graded again: a --fresh run that is interrupted then
        # goes on as a plain run, which grades what this one did not get to (their old reports stay until then).
        for sub in the_plan.to_grade:
            forget_stored(options.out / sub.name)
    sweep_orphaned_tempdirs()  # what an earlier grader killed with SIGKILL left (each child sweeps too)
    _grade_all(the_plan, options, summary, on_done)
    summary.gradebook, summary.index = write_overview(options.out)
    names = {s.name for s in the_plan.submissions}
    summary.not_graded = [name for name, doc in collect_results(options.out)
                          if name in names and doc.get("status") != "graded"]
    return summary


def _grade_all(
    the_plan: Plan, options: BatchOptions, summary: BatchSummary, on_done: Callable[[Finished], None] | None
) -> None:
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
        grader.close()


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
        on_done(Finished(str(sub.get("name")), "graded" if graded else "error", doc.get("grade"), doc.get("score"),
                         doc.get("error")))
