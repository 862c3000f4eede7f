"""A private copy of a submission and the FastAPI app found in it (DESIGN.md §3: workspace).

The harness runs, lints and pokes at the copy, never at the student's folder, and it finds the app by
reading source with `ast` only: importing student code in the harness process would run it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from grader.entrypoint import Entrypoint, detect_entrypoint, override_entrypoint
from grader.errors import GraderError, UsageError
from grader.gitinfo import head_commit
from grader.tempdirs import make_owned_tempdir, remove_tree

__all__ = ["Entrypoint", "Workspace", "detect_entrypoint", "open_workspace"]

# Folders that are never part of the code under test: caches, VCS data and virtualenvs (which can be
# hundreds of MB and would shadow the environment the harness builds).
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
    }
)
SKIP_SUFFIXES = (".pyc", ".pyo")
MAX_BYTES = 200 * 1024 * 1024


@dataclass
class Workspace:
    source: Path  # the submission as given (absolute)
    root: Path  # the private copy
    name: str  # submission name (folder name)
    commit: str | None  # `git rev-parse HEAD` of the source if it is a git repository
    entrypoint: Entrypoint | None
    problem: str | None  # one line when no app was found
    # Entries not copied because they were symlinks leading outside the submission (or dangling),
    # or special files; relative paths, for the report.
    skipped: list[str] = field(default_factory=list)


@contextmanager
def open_workspace(
    path: Path | str, *, app: str | None = None, app_dir: str | None = None, max_bytes: int = MAX_BYTES
) -> Iterator[Workspace]:
    """Copy the submission to a temp dir, find its app, yield the Workspace; the copy is removed on exit."""
    source = Path(path).expanduser()
    if not source.exists():
        raise UsageError(f"submission path does not exist: {path}")
    if not source.is_dir():
        raise UsageError(f"submission path is not a directory: {path}")
    source = source.resolve()
    name = source.name or "submission"

    try:
        tmp = make_owned_tempdir("redis-grader-ws-").resolve()
    except OSError as exc:
        raise GraderError(f"cannot create a private workspace: {exc}") from None
    try:
        root = tmp / name
        try:
            skipped = _copy_tree(source, root, max_bytes)
        except OSError as exc:  # an unreadable file, a full disk: one line, not a traceback
            where = f" {exc.filename}" if exc.filename else ""
            raise GraderError(f"cannot copy the submission{where}: {exc.strerror or exc}") from None
        if app is not None or app_dir is not None:
            entrypoint, problem = override_entrypoint(root, source, app, app_dir), None
        else:
            entrypoint, problem = detect_entrypoint(root)
        yield Workspace(
            source=source,
            root=root,
            name=name,
            commit=head_commit(source),  # a repository rooted at the submission only
            entrypoint=entrypoint,
            problem=problem,
            skipped=skipped,
        )
    finally:
        remove_tree(tmp)


# --- copying -----------------------------------------------------------------------------------


def _copy_tree(source: Path, dest: Path, max_bytes: int) -> list[str]:
    """Copy without following symlinks; links are kept only when they stay inside the submission."""
    skipped: list[str] = []
    total = 0
    dest.mkdir(parents=True)
    stack: list[tuple[Path, Path]] = [(source, dest)]
    while stack:
        src_dir, dst_dir = stack.pop()
        try:
            entries = list(os.scandir(src_dir))
        except OSError as exc:
            raise GraderError(f"cannot read {src_dir}: {exc.strerror or exc}") from None
        for entry in entries:
            src = Path(entry.path)
            dst = dst_dir / entry.name
            rel = src.relative_to(source).as_posix()
            if entry.is_symlink():
                if _link_stays_inside(src, source):
                    os.symlink(os.readlink(src), dst)
                else:
                    skipped.append(rel)
                continue
            if entry.is_dir(follow_symlinks=False):
                # A folder with pyvenv.cfg is a virtualenv whatever its name (env/, .env311/, ...).
                if entry.name in SKIP_DIRS or (src / "pyvenv.cfg").is_file():
                    continue
                dst.mkdir()
                stack.append((src, dst))
            elif entry.is_file(follow_symlinks=False):
                if entry.name.endswith(SKIP_SUFFIXES):
                    continue
                total += entry.stat(follow_symlinks=False).st_size
                if total > max_bytes:
                    raise GraderError(
                        f"submission is larger than {max_bytes // (1024 * 1024)} MB "
                        f"(without .git, virtualenvs and caches): {source}"
                    )
                shutil.copy2(src, dst, follow_symlinks=False)
            else:  # fifos, sockets, devices: nothing a Python app needs, and reading a fifo would hang
                skipped.append(rel)
    return sorted(skipped)


def _link_stays_inside(link: Path, source: Path) -> bool:
    # Absolute links would point back at the student's folder, not the copy: keep only relative ones
    # that resolve to an existing path inside the submission.
    target = os.readlink(link)
    if os.path.isabs(target):
        return False
    try:
        resolved = link.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling or a loop
        return False
    return resolved == source or source in resolved.parents




