"""What a batch grades: the submission folders, and which of them an earlier run already did."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader import __version__
from grader import rubric as rubrics
from grader.errors import UsageError
from grader.reporters.overview import GRADEBOOK, INDEX
from grader.runtime import DEFAULT_APP_IMAGE

from . import sources
from .integrity import signing_key
from .store import read_stored

# The files a batch writes beside the submissions' folders: no submission may be called so.
RESERVED = (GRADEBOOK, INDEX)

if TYPE_CHECKING:
    from grader.runner import GradeOptions


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
    shard: tuple[int, int] | None = None  # (I, N): grade only the I-th of N slices of the class
    runtime: str = "local"  # where each submission's code runs (grader/runtime/); `grader batch` picks docker when it can
    app_image: str = DEFAULT_APP_IMAGE

    @classmethod
    def of(cls, grading: GradeOptions, **batch: Any) -> BatchOptions:
        """The batch's options around the ones every `grader check` child gets (the CLI declares them once)."""
        return cls(rubric=grading.rubric, redis=grading.redis, redis_image=grading.redis_image, env=grading.env,
                   start_timeout=grading.start_timeout, docs_url=grading.docs_url, only=grading.only,
                   runtime=grading.runtime, app_image=grading.app_image, **batch)


@dataclass(frozen=True)
class SubmissionDir:
    name: str  # the folder's name: also the name of its results folder and its gradebook row
    path: Path  # the folder; for an archive the archive file, for a roster row the repository (path or URL)
    kind: str = "folder"  # "folder" | "archive" | "repo" (see sources.py)
    commit: str | None = None  # a roster row's commit
    repo: str | None = None  # a roster row's repository as written (a URL is no path: Path() would mangle "//")


def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" -> (I, N), 1 <= I <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(f"--shard '{text}' is not I/N with 1 <= I <= N (e.g. 1/4)")
    return int(match[1]), int(match[2])


def in_shard(submissions: list[SubmissionDir], shard: tuple[int, int] | None) -> list[SubmissionDir]:
    """The I-th of N slices: every N-th submission by name, from the I-th on. It depends on the names only, so
    every shard of a matrix, on any machine, agrees on who grades whom, and the slices are even in size."""
    if shard is None:
        return submissions
    index, count = shard
    ordered = sorted(submissions, key=lambda s: s.name)
    return [sub for position, sub in enumerate(ordered) if position % count == index - 1]


@dataclass
class Plan:
    submissions: list[SubmissionDir]
    to_grade: list[SubmissionDir]
    kept: list[SubmissionDir]  # already done by an earlier run
    notes: list[str] = field(default_factory=list)


def _roster(path: Path) -> list[SubmissionDir]:
    entries = sources.read_roster(path)
    for entry in entries:
        if entry.name in RESERVED:
            raise UsageError(f"roster '{path}': '{entry.name}' is the name of the results folder's own file; "
                             "give that student another name")
    return [SubmissionDir(e.name, Path(e.repo), "repo", e.commit, e.repo) for e in entries]


def _without_reserved(found: list[SubmissionDir], notes: list[str]) -> list[SubmissionDir]:
    for sub in found:
        if sub.name in RESERVED:
            notes.append(f"ignored {sub.path.name}: '{sub.name}' is the name of the results folder's own file; "
                         "rename the submission to grade it")
    return [sub for sub in found if sub.name not in RESERVED]


def find_submissions(root: Path, out: Path) -> tuple[list[SubmissionDir], list[str]]:
    """Every immediate, non-hidden sub-folder of `root` and every archive in it (`.zip`, `.tar.gz`), by name, or
    every row of the roster CSV `root`; notes for what was passed over."""
    if not root.exists():
        raise UsageError(f"submissions folder '{root}' does not exist")
    if root.is_file() and root.suffix.lower() == ".csv":
        return _roster(root), []
    if not root.is_dir():
        raise UsageError(f"'{root}' is not a folder")
    root_resolved, out_resolved = root.resolve(), out.resolve()
    if out_resolved == root_resolved:
        raise UsageError("--out must not be the submissions folder itself")
    found: list[SubmissionDir] = []
    archives: list[SubmissionDir] = []
    notes: list[str] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        stem = sources.archive_stem(entry)
        if stem is not None and entry.is_file():
            archives.append(SubmissionDir(stem, entry, "archive"))
            continue
        if not entry.is_dir():
            notes.append(f"ignored {entry.name}: not a folder")
            continue
        if entry.resolve() == out_resolved:
            notes.append(f"ignored {entry.name}: it is the results folder")
            continue
        found.append(SubmissionDir(entry.name, entry))
    folders = {sub.name for sub in found}
    for archive in archives:
        if archive.name in folders:
            notes.append(f"ignored {archive.path.name}: {archive.name} is graded from another folder or archive")
        else:
            folders.add(archive.name)
            found.append(archive)
    found = _without_reserved(found, notes)
    found.sort(key=lambda s: s.name)
    if not found:
        raise UsageError(f"no submission folders in '{root}' (each sub-folder is one submission)")
    return found, notes


def grading_settings(options: BatchOptions) -> dict[str, Any]:
    """Everything besides the submission that a result depends on. The rubric counts by its content, so an
    edited rubric file is a change too; --redis and --env are not here, as they must not change a grade."""
    try:
        rubric = hashlib.sha256(rubrics.resolve(options.rubric).read_bytes()).hexdigest()
    except (UsageError, OSError):  # grading will say what is wrong with it
        rubric = options.rubric
    return {"grader": __version__, "rubric_sha256": rubric, "only": sorted(options.only),
            "docs_url": options.docs_url, "start_timeout": options.start_timeout}


def source_of(sub: SubmissionDir) -> str | None:
    """What a submission was made from, where the batch can tell that it changed: an archive's bytes, a roster row's
    repository and commit. None for a folder, which is read as it is (a resumed run keeps its result)."""
    if sub.kind == "archive":
        digest = hashlib.sha256()
        try:
            with open(sub.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            return "archive (unreadable)"
        return f"archive sha256:{digest.hexdigest()}"
    if sub.kind == "repo":
        return f"repository {sub.repo}" + (f" at {sub.commit}" if sub.commit else "")
    return None


def submission_settings(options: BatchOptions, sub: SubmissionDir,
                        grading: dict[str, Any] | None = None) -> dict[str, Any]:
    """grading_settings() (`grading`, when the caller has it already), and where the submission came from
    (source_of): a stored result made from another archive, or another roster commit, is not kept."""
    source = source_of(sub)
    base = grading if grading is not None else grading_settings(options)
    return base | ({"source": source} if source is not None else {})


def plan(submissions_dir: Path, options: BatchOptions) -> Plan:
    submissions, notes = find_submissions(submissions_dir, options.out)
    if options.shard is not None:
        everyone = len(submissions)
        submissions = in_shard(submissions, options.shard)
        notes.append(f"shard {options.shard[0]}/{options.shard[1]}: {len(submissions)} of {everyone} submissions")
    to_grade, kept = [], []
    grading = grading_settings(options)  # the rubric is read once, not per submission
    key = signing_key()
    unsigned = stale = errors = 0
    for sub in submissions:
        stored = read_stored(options.out / sub.name, key)
        status = None if options.fresh else stored.status
        if status is not None and not stored.trusted:
            unsigned += 1
            status = None
        elif status is not None and stored.settings != submission_settings(options, sub, grading):
            stale += 1
            status = None
        if status == "graded" or (status == "error" and not options.retry_errors):
            kept.append(sub)
            errors += status == "error"
        else:
            to_grade.append(sub)
    if unsigned:
        notes.append(f"grading {unsigned} stored result(s) again: their signature is missing or does not match "
                     "(written by something other than this batch, or with another key)")
    if stale:
        notes.append(f"grading {stale} stored result(s) again: they were made with another rubric, --only, "
                     "--docs-url or grader version")
    if kept:
        how = "--fresh grades them again" + (", --retry-errors the ones not graded" if errors else "")
        notes.append(f"kept {len(kept)} result(s) from an earlier run ({how})")
    return Plan(submissions, to_grade, kept, notes)


# Jobs are not capped at the cores: most of a grading waits (on the app, on Redis, on a TTL or a window), and the
# timing checks take turns through the machine-wide lock of grader/machinelock.py. What bounds
# --jobs instead is memory and process count: each job is a grader, an app and a Redis at once.
JOBS_PER_CORE = 4


def cap_jobs(jobs: int) -> int:
    """--jobs, at most JOBS_PER_CORE per core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(jobs, JOBS_PER_CORE * cores))
