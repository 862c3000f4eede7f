"""The two kinds of error a user can meet, each with its exit code (DESIGN.md §6)."""


class GraderError(Exception):
    """The harness could not grade (no Redis could be started, a broken rubric, ...). Exit 3."""

    exit_code = 3


class UsageError(GraderError):
    """The user asked for something impossible (a missing path, a bad option). Exit 2."""

    exit_code = 2
