"""`grader batch`: grade every submission folder of a class, each in its own `grader check` subprocess.

plan.py decides what to grade (and what an earlier run already did), store.py owns the results folder and
integrity.py the signatures that let a resumed run trust it, supervisor.py runs and stops the `grader check`
children, run.py ties them together; the class overview (index.html) is a reporter, grader/reporters/overview.py.
"""

from __future__ import annotations

from .merge import MergeSummary, merge
from .plan import (
    JOBS_PER_CORE,
    BatchOptions,
    Plan,
    SubmissionDir,
    cap_jobs,
    find_submissions,
    grading_settings,
    in_shard,
    parse_shard,
    plan,
    submission_settings,
)
from .run import BatchSummary, Finished, Progress, run_batch, write_overview
from .store import GRADED_WITH, LOG, REPORTS, RESULT, collect_results, graded_with, stored_status, write_submission
from .supervisor import BATCH_VAR, Grader, check_argv, error_document, kill_tree, processes_of

__all__ = [
    "BATCH_VAR",
    "GRADED_WITH",
    "JOBS_PER_CORE",
    "LOG",
    "REPORTS",
    "RESULT",
    "BatchOptions",
    "BatchSummary",
    "Finished",
    "Grader",
    "MergeSummary",
    "Plan",
    "Progress",
    "SubmissionDir",
    "cap_jobs",
    "check_argv",
    "collect_results",
    "error_document",
    "find_submissions",
    "graded_with",
    "grading_settings",
    "in_shard",
    "kill_tree",
    "merge",
    "parse_shard",
    "plan",
    "processes_of",
    "run_batch",
    "stored_status",
    "submission_settings",
    "write_overview",
    "write_submission",
]
