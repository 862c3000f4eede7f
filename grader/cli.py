"""The `grader` command. Its --help is its documentation."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from grader import __version__
from grader.app import QUIET_PERIOD_S
from grader.assignment_cli import assignment
from grader.cli_support import fail
from grader.errors import GraderError, UsageError
from grader.quiz.cli import quiz
from grader.rubric import GRADE_ORDER
from grader.runtime import DEFAULT_APP_IMAGE
from grader.tempdirs import sweep_orphaned_tempdirs
from grader.text import printable_line, printable_name

if TYPE_CHECKING:
    from grader.runner import GradeOptions

EXIT_OK, EXIT_BELOW, EXIT_USAGE, EXIT_HARNESS = 0, 1, 2, 3


def meets(grade: str | None, minimum: str) -> bool:
    return grade is not None and GRADE_ORDER.index(grade) <= GRADE_ORDER.index(minimum)


def _interrupt_on_sigterm() -> None:
    """A grader stopped with SIGTERM (CI cancelling a job, `kill`) unwinds like Ctrl-C, so every Redis, app and
    temporary folder it started is cleaned up by its context manager."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="redis-grader")
def main() -> None:
    """Grade FastAPI submissions for the "Redis: cache, counters and Lua" module.

    Each submission runs against its own fresh Redis, behind a proxy that records every command the app
    sends; behavioural checks drive it over HTTP and the outcome maps to the course rubric S/A/B/C.

    \b
    Exit codes: 0 graded at or above --min-grade, 1 graded below it,
                2 usage error, 3 the harness could not grade.
    """
    logging.basicConfig(format="grader: %(message)s", level=logging.WARNING)


class Seconds(click.FloatRange):
    """A duration: a finite number of seconds above zero (FloatRange alone lets "nan" and "inf" through)."""

    name = "seconds"

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            self.fail(f"{value!r} is not a number of seconds.", param, ctx)
        return super().convert(value, param, ctx)


# The options `check` and `batch` share, declared once. Their values reach the command as one GradeOptions,
# `grading`, so both commands read them the same way (the batch hands them on to each `grader check`).
_GRADING_OPTIONS = [
    click.option("--rubric", default="redis-module", show_default=True,
                 help="Rubric name (shipped) or path to a TOML file."),
    click.option("--redis", "redis_backend", type=click.Choice(["auto", "docker", "local"]), default="auto",
                 show_default=True, help="Where each submission's fresh Redis runs: docker (a container; pulls the image "
                 "when missing), local (a redis-server process), or auto: a local redis-server 7, else a container "
                 "from an image already on this machine, else an older local redis-server (never pulls)."),
    click.option("--redis-image", default="redis:7-alpine", show_default=True, help="Image for --redis docker."),
    click.option("--env", "env_kind", type=click.Choice(["isolated", "current"]), default="isolated",
                 show_default=True, help="isolated: a cached venv built from the submission's requirements (uv); "
                 "current: this Python."),
    click.option("--start-timeout", type=Seconds(), default=30.0, show_default=True,
                 help=f"Seconds the app gets to answer HTTP (a startup that makes no progress for {QUIET_PERIOD_S:g} s "
                 "fails sooner)."),
    click.option("--docs-url", metavar="URL", help="Base URL of the textbook for remediation links."),
    click.option("--only", multiple=True, metavar="ID", help="Run only these checks (ids or globs like 'cache.*'); "
                 "the others are left out of the score."),
    click.option("--runtime", type=click.Choice(["local", "docker"]), default=None,
                 help="Where the submission's code runs (its install, app, tests and seed): local (this machine, as "
                 "your user, in a sandbox that is no security boundary) or docker (containers with no network, an "
                 "unprivileged user, no capabilities, resource limits). Default: local for `check`; for `batch`, "
                 "docker when an engine answers."),
    click.option("--app-image", default=DEFAULT_APP_IMAGE, show_default=True,
                 help="Image for --runtime docker: Python 3 with venv and pip."),
]


def grading_options(default_runtime: Callable[[], str]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Adds the shared grading options to a command, which receives them as `grading: GradeOptions`;
    `default_runtime` picks the runtime when --runtime is not given."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def with_grading(*args: Any, rubric: str, redis_backend: str, redis_image: str, env_kind: str,
                         start_timeout: float, docs_url: str | None, only: tuple[str, ...], runtime: str | None,
                         app_image: str, **kwargs: Any) -> None:
            from grader.runner import GradeOptions

            grading = GradeOptions(rubric=rubric, redis=redis_backend, redis_image=redis_image, env=env_kind,
                                   start_timeout=start_timeout, docs_url=docs_url, only=only,
                                   runtime=runtime or default_runtime(), app_image=app_image)
            command(*args, grading=grading, **kwargs)

        for option in reversed(_GRADING_OPTIONS):
            with_grading = option(with_grading)
        return with_grading

    return decorate


def _local() -> str:
    return "local"  # a student or a CI job grades its own code


def _batch_default() -> str:
    from grader.runtime import default_batch_runtime

    return default_batch_runtime()  # a class is strangers' code: containers when an engine answers, said loudly if not


@main.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@grading_options(_local)
@click.option("--min-grade", type=click.Choice(GRADE_ORDER), default="C", show_default=True,
              help="Exit 1 when the grade is below this.")
@click.option("--app", "app_target", metavar="MODULE:ATTR", help="The FastAPI app, when detection picks the wrong one.")
@click.option("--app-dir", metavar="DIR", help="Folder (inside the submission) to run the app from.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the result document here.")
@click.option("--junit", type=click.Path(path_type=Path), help="Write JUnit XML here.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Write a Markdown report here.")
@click.option("--html", type=click.Path(path_type=Path), help="Write a self-contained HTML report here.")
@click.option("--gradescope", type=click.Path(path_type=Path), help="Write Gradescope's results.json here.")
@click.option("--color/--no-color", default=None, help="Colour the summary (default: when the output is a terminal).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the grade line.")
@click.option("--result-fd", type=int, hidden=True, help="Write the result document to this inherited descriptor "
              "(how `grader batch` gets it back).")
def check_command(path: Path, grading: GradeOptions, min_grade: str, app_target: str | None, app_dir: str | None,
                  json_path: Path | None, junit: Path | None, markdown: Path | None, html: Path | None,
                  gradescope: Path | None, color: bool | None, quiet: bool, result_fd: int | None) -> None:
    """Grade the submission in PATH (a folder holding a FastAPI app)."""
    from grader.reporters import check_report_paths, render_terminal, write_reports
    from grader.runner import grade

    _interrupt_on_sigterm()
    if result_fd is not None:
        os.set_inheritable(result_fd, False)  # for this process alone: nothing it starts gets the channel
    sweep_orphaned_tempdirs()
    options = dataclasses.replace(grading, app=app_target, app_dir=app_dir)
    try:
        if not path.exists():
            raise UsageError(f"path '{path}' does not exist")
        if not path.is_dir():
            raise UsageError(f"path '{path}' is not a folder")
        reports = {"json_path": json_path, "junit": junit, "markdown": markdown, "html": html, "gradescope": gradescope}
        check_report_paths(**reports)
        result = grade(path, options)
    except GraderError as exc:
        fail(exc)
    except KeyboardInterrupt:
        click.echo("grader: interrupted; everything it started has been stopped", err=True)
        sys.exit(130)
    unwritten: GraderError | None = None
    try:
        write_reports(result, **reports)
    except GraderError as exc:  # the path became unwritable while grading: the rest is still written and shown
        unwritten = exc
    if result_fd is not None:
        with os.fdopen(result_fd, "wb") as channel:
            channel.write(json.dumps(result, ensure_ascii=False).encode())
    use_color = sys.stdout.isatty() if color is None else color
    if quiet:
        from grader.reporters.terminal import quiet_line

        click.echo(quiet_line(result))
    else:
        click.echo(render_terminal(result, color=use_color))
    if unwritten is not None:
        fail(unwritten)
    if result["status"] != "graded":
        sys.exit(EXIT_HARNESS)
    sys.exit(EXIT_OK if meets(result["grade"], min_grade) else EXIT_BELOW)


@main.command("checks")
@click.option("--rubric", default="redis-module", show_default=True, help="Rubric name or path.")
def list_checks(rubric: str) -> None:
    """List the checks a rubric runs, with their points, then the known checks (built-in or from an installed
    plugin) that it leaves out."""
    from grader import rubric as rubrics
    from grader.registry import Registry

    try:
        known = Registry.load()
        loaded = rubrics.load(rubric, known)
    except GraderError as exc:
        fail(exc)
    for entry in loaded.entries:
        found = known[entry.check_id]
        click.echo(f"{entry.check_id:32} {found.level:9} {entry.points:>4g}  {found.title}")
    left_out = [found for found in known.values() if loaded.entry(found.id) is None]
    if left_out:
        click.echo("\nnot in this rubric:")
        for found in left_out:
            click.echo(f"{found.id:32} {found.level:9} {'-':>4}  {found.title}")


@main.command("batch")
@click.argument("submissions_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), metavar="RESULTS_DIR",
              help="Where results go: RESULTS_DIR/<name>/result.json, report.html, report.md, junit.xml, "
              "grader.log; RESULTS_DIR/gradebook.csv and index.html over all of them.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Submissions graded at once; may exceed the cores, as most of a grading waits (the timing checks "
              "take a machine-wide lock: one grading at a time runs them). At most 4 per core.")
@click.option("--timeout", type=Seconds(), default=600.0, show_default=True,
              help="Seconds one submission may take in all (environment build included); then its grading is "
              "stopped and recorded as not graded.")
@grading_options(_batch_default)
@click.option("--retry-errors", is_flag=True, help="Grade again the submissions an earlier run could not grade.")
@click.option("--fresh", is_flag=True, help="Grade every submission again, ignoring earlier results.")
@click.option("--shard", metavar="I/N", help="Grade only the I-th of N slices of the class (every N-th submission "
              "by name); `grader merge` joins the shards' results folders.")
def batch_command(submissions_dir: Path, out_dir: Path, jobs: int, timeout: float, grading: GradeOptions,
                  retry_errors: bool, fresh: bool, shard: str | None) -> None:
    """Grade a whole class: every sub-folder of SUBMISSIONS_DIR is one submission, and so is every archive in it
    (NAME.zip, NAME.tar.gz: an LMS export). SUBMISSIONS_DIR may also be a roster CSV (name,repo[,commit]): each
    repository (a path or a URL) is cloned shallow at its commit.

    Each submission is graded by its own `grader check` process, so a crash or a hang costs only its own
    row. A run can be stopped (Ctrl-C) and started again with the same command: submissions already
    graded are kept (--fresh grades them again, --retry-errors the ones that could not be graded).

    \b
    Exit codes: 0 every submission graded, 3 some could not be graded,
                2 usage error, 130 interrupted.
    """
    from grader import batch
    from grader import rubric as rubrics
    from grader.checking import load_checks
    from grader.checkrun import check_selection

    _interrupt_on_sigterm()  # a cancelled CI job stops the children cleanly, as Ctrl-C does
    # A shell starts a background job (`grader batch ... &` in a script) with SIGINT ignored, and so would this
    # process be: restore Ctrl-C, so that a SIGINT sent to it still stops the batch cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        slice_of = batch.parse_shard(shard) if shard else None
    except GraderError as exc:
        fail(exc)
    options = batch.BatchOptions.of(grading, out=out_dir, jobs=jobs, timeout=timeout, retry_errors=retry_errors,
                                    fresh=fresh, shard=slice_of)
    interactive = sys.stdout.isatty()
    bar: Any = None
    progress: batch.Progress | None = None

    def on_plan(plan: batch.Plan) -> None:
        nonlocal bar, progress
        progress = batch.Progress(len(plan.to_grade))
        for note in plan.notes:  # they may name a submission's folder
            click.echo(f"grader: {printable_line(note)}", err=True)
        if jobs > batch.cap_jobs(jobs):
            click.echo(f"grader: --jobs {jobs} capped at {batch.cap_jobs(jobs)} ({batch.JOBS_PER_CORE} per core)", err=True)
        if interactive and plan.to_grade:
            bar = click.progressbar(length=len(plan.to_grade), label="Grading", show_pos=True,
                                    item_show_func=lambda line: line)
            bar.__enter__()

    def on_done(done: batch.Finished) -> None:
        status = progress.step() if progress is not None else ""
        if bar is not None:  # the bar shows its own ETA
            bar.update(1, done.line)
        else:
            click.echo(f"{done.line}  {status}")

    try:
        # A bad rubric or --only is one error now, not one per submission.
        check_selection(rubrics.load(grading.rubric, load_checks()), grading.only)
        summary = batch.run_batch(submissions_dir, options, on_plan=on_plan, on_done=on_done)
    except GraderError as exc:
        fail(exc)
    except KeyboardInterrupt:  # before grading started (run_batch handles its own)
        click.echo("grader: interrupted", err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    kept = f", {summary.kept} kept from an earlier run" if summary.kept else ""
    click.echo(f"{summary.done} of {summary.total} done ({summary.graded_now} graded now, "
               f"{summary.errors_now} could not be graded{kept})")
    for name in summary.not_graded:
        click.echo(printable_name(f"not graded: {name} (see {out_dir / name / 'report.html'})"))
    click.echo(f"gradebook: {summary.gradebook}\noverview:  {summary.index}")
    if summary.interrupted:
        # Again with --fresh would start over; without it, the run goes on from where it stopped.
        again = "the same command without --fresh" if fresh else "the same command"
        click.echo(f"grader: interrupted; the submissions graded so far are kept, run {again} to go on", err=True)
        sys.exit(130)
    sys.exit(EXIT_HARNESS if summary.not_graded else EXIT_OK)


@main.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RESULTS_DIR...")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="The merged results folder: DIR/<name>/..., DIR/gradebook.csv and DIR/index.html.")
@click.option("--trust-shards", is_flag=True, help="Take the shards' results as they are, also when this machine's "
              "batch key does not verify them (shards run on machines of their own, e.g. CI runners).")
def merge_command(shards: tuple[Path, ...], out_dir: Path, trust_shards: bool) -> None:
    """Join the results folders of a sharded batch (`grader batch --shard I/N`) into one gradebook and overview.

    \b
    Exit codes: 0 merged, 2 usage error (a submission in two shards, a missing folder).
    """
    from grader import batch

    try:
        summary = batch.merge(list(shards), out_dir, trust_shards=trust_shards)
    except GraderError as exc:
        fail(exc)
    for note in summary.notes:  # they may name a submission's folder
        click.echo(f"grader: {printable_line(note)}", err=True)
    gradebook, index = batch.write_overview(out_dir)
    click.echo(f"merged {len(summary.merged)} submission(s) from {len(shards)} folder(s)")
    click.echo(f"gradebook: {gradebook}\noverview:  {index}")


main.add_command(quiz)
main.add_command(assignment)

if __name__ == "__main__":
    main()
