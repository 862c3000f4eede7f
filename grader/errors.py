"""The two kinds of error a user can meet, each with its exit code (DESIGN.md §6)."""

from __future__ import annotations

from pathlib import Path


class GraderError(Exception):
    """The harness could not grade (no Redis could be started, a broken rubric, ...). Exit 3."""

    exit_code = 3


class UsageError(GraderError):
    """The user asked for something impossible (a missing path, a bad option). Exit 2."""

    exit_code = 2


def cannot_write(path: Path, exc: OSError, what: str | None = None) -> UsageError:
    """"cannot write [<what> to ]<path>: <why>", naming the file that stands where a folder of the path should be
    (the OSError alone would say "File exists")."""
    blocking = next((folder for folder in path.parents if folder.exists() and not folder.is_dir()), None)
    reason = f"{blocking} is not a folder" if blocking is not None else exc.strerror or str(exc)
    return UsageError(f"cannot write {f'{what} to ' if what else ''}{path}: {reason}")
