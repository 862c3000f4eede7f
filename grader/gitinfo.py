"""What the grader reads of a submission's git repository: the commit checked out, and whether the files differ
from it (dirty).

A repository's own configuration can name commands that git runs: `core.fsmonitor` on `git status`, the clean
filter of every file its .gitattributes names, and more. A submission's repository is the student's, so git here
never reads it: it works on a git folder of the grader's own, with an empty configuration, that holds a copy of
the submission's HEAD, refs and index (up to a size) and reads its objects where they are (read only). Neither the user's nor the
system's git configuration takes part either, so every machine reads a repository alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from grader.commands import Stopped, never, run_command
from grader.tempdirs import owned_tempdir

# A student's repository answers in well under a second; one that makes git wait (a FIFO where git reads) costs
# at most this.
GIT_TIMEOUT_S = 30
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_COPIED = ("HEAD", "packed-refs", "index", "shallow")  # files of a git folder that name what is checked out
_CONFIG_MAX_BYTES = 1024 * 1024
# The most of a submission's git state that is copied (refs and index); a repository with more is read as none.
_STATE_MAX_BYTES = 64 * 1024 * 1024
_STATE_MAX_FILES = 20_000

Git = Callable[..., "str | None"]  # git(*args): its standard output, stripped, or None when it failed


def _regular_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _config(git_dir: Path) -> str:
    """The configuration of the grader's git folder: only the object format is taken from the repository's."""
    try:
        config = git_dir / "config"
        text = config.read_text(errors="replace") if config.stat().st_size <= _CONFIG_MAX_BYTES else ""
    except OSError:
        text = ""
    if re.search(r"(?im)^\s*objectformat\s*=\s*sha256\s*$", text):
        return "[core]\n\trepositoryformatversion = 1\n\tbare = false\n[extensions]\n\tobjectFormat = sha256\n"
    return "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"


def _state_files(git_dir: Path) -> list[Path] | None:
    """The files of the git folder that name what is checked out (relative to it): HEAD, the refs, the index; None
    when they are more than a repository needs (a submission's .git can hold anything)."""
    found = [Path(name) for name in _COPIED if _regular_file(git_dir / name)]
    found += [shared.relative_to(git_dir) for shared in git_dir.glob("sharedindex.*") if _regular_file(shared)]
    refs = git_dir / "refs"
    if refs.is_dir() and not refs.is_symlink():
        for folder, _, files in os.walk(refs):  # links to folders are not followed
            found += [Path(folder, name).relative_to(git_dir) for name in files if _regular_file(Path(folder, name))]
            if len(found) > _STATE_MAX_FILES:
                return None
    if sum((git_dir / name).stat().st_size for name in found) > _STATE_MAX_BYTES:
        return None
    return found


def _copy_state(git_dir: Path, view: Path) -> bool:
    """Copy the state git reads into `view`; False when it is too big to be a student's repository."""
    found = _state_files(git_dir)
    if found is None:
        return False
    (view / "refs").mkdir()
    for name in found:
        (view / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(git_dir / name, view / name)
    (view / "config").write_text(_config(git_dir), encoding="utf-8")
    return True


@contextlib.contextmanager
def _repository(folder: Path, stopped: Stopped = never) -> Iterator[Git | None]:
    """A way to run git on the repository rooted at `folder` (a `.git` folder there) without its configuration;
    None when there is none, or it cannot be read."""
    folder = Path(os.path.abspath(folder))  # git runs elsewhere (cwd), so a relative path would name another place
    git_dir = folder / ".git"
    if not git_dir.is_dir() or git_dir.is_symlink():  # a .git file (a worktree, a submodule) points elsewhere
        yield None
        return
    with owned_tempdir("redis-grader-git-") as tmp:  # swept by the next grader if this one is killed
        view = tmp / "git"
        try:
            view.mkdir()
            copied = _copy_state(git_dir, view)
        except OSError:
            copied = False
        if not copied:
            yield None
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(tmp),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_OBJECT_DIRECTORY": str(git_dir / "objects"),
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
        # safe.directory: git's guard against a repository's configuration, which is not read here at all.
        prefix = ["git", "-c", "safe.directory=*", f"--git-dir={view}", f"--work-tree={folder}"]

        def git(*args: str) -> str | None:
            try:
                out = run_command([*prefix, *args], timeout=GIT_TIMEOUT_S, env=env, cwd=tmp, stopped=stopped)
            except (OSError, subprocess.SubprocessError):
                return None
            return out.stdout.strip() if out.returncode == 0 else None

        yield git


def _head(git: Git) -> str | None:
    head = git("rev-parse", "--verify", "-q", "HEAD")
    return head if head is not None and _SHA.fullmatch(head) else None


def head_commit(folder: Path, stopped: Stopped = never) -> str | None:
    """The commit checked out in the repository rooted at `folder`, None when there is none."""
    with _repository(folder, stopped) as git:
        return None if git is None else _head(git)


def checkout_state(folder: Path, stopped: Stopped = never) -> tuple[str | None, bool | None]:
    """(the commit checked out, whether the files differ from it); (None, None) when `folder` is no repository,
    and a dirty of None when git could not tell. Raises commands.Interrupted when `stopped()` comes true."""
    with _repository(folder, stopped) as git:
        head = None if git is None else _head(git)
        if git is None or head is None:
            return None, None
        status = git("status", "--porcelain", "--untracked-files=normal")
        return head, None if status is None else bool(status)
