"""Where a class comes from: a folder of folders, a roster CSV (`name,repo[,commit]`), or archives (one `.zip` or
`.tar.gz` per student, as an LMS export gives them, in the class folder beside or instead of folders).

Every form becomes submission folders on disk: roster repositories are cloned shallow at their commit and archives
are unpacked, each into an owned temporary folder (grader/tempdirs.py), which the batch removes at its end. The
commit graded, and whether the tree differed from it (dirty), is read in the batch by grader/gitinfo.py, never
through the repository's own git configuration.
"""

from __future__ import annotations

import csv
import functools
import io
import lzma
import os
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.commands import Stopped, never, run_command
from grader.errors import UsageError
from grader.gitinfo import checkout_state, head_commit
from grader.tempdirs import make_owned_tempdir, remove_tree
from grader.workspace import MAX_BYTES

ARCHIVES = (".zip", ".tar.gz", ".tgz")
MAX_MEMBERS = 20_000
GIT_TIMEOUT_S = 300
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")  # a roster name is a folder name: nothing that escapes
# A roster's commit: a commit id, a branch or a tag - never something git would read as an option.
_COMMIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_SHORT_SHA = re.compile(r"[0-9a-fA-F]{4,39}")
# The transports a roster's repository may use (git's ext:: and other command-running ones are refused).
_GIT_PROTOCOLS = "file:git:http:https:ssh"


@dataclass(frozen=True)
class Origin:
    """Where one submission came from, for the result document."""

    commit: str | None = None
    dirty: bool | None = None  # None when not a git checkout


def archive_stem(path: Path) -> str | None:
    """The submission name of an archive file (its name without the extension), None if it is not one."""
    for ext in ARCHIVES:
        if path.name.lower().endswith(ext) and len(path.name) > len(ext):  # BOB.ZIP too
            return path.name[: -len(ext)]
    return None


def git_origin(folder: Path, stopped: Stopped = never) -> Origin:
    """The commit checked out in `folder` (a repository rooted there) and whether its tree differs from it."""
    commit, dirty = checkout_state(folder, stopped)
    return Origin(commit, dirty)


# --------------------------------------------------------------------------------------------- roster


@dataclass(frozen=True)
class RosterEntry:
    name: str
    repo: str  # a git repository: a local path or a URL
    commit: str | None


def read_roster(path: Path) -> list[RosterEntry]:
    """The rows of a roster CSV: `name,repo[,commit]`, with or without that header line."""
    entries: list[RosterEntry] = []
    seen: set[str] = set()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"roster '{path}' is not UTF-8 text (byte {exc.start}): save it as CSV UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read roster '{path}': {exc.strerror}") from None
    for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#") or (number == 1 and cells[:2] == ["name", "repo"]):
            continue
        if len(cells) < 2 or not cells[1]:
            raise UsageError(f"{path}:{number}: a roster row is name,repo[,commit]")
        name, repo, commit = cells[0], cells[1], (cells[2] if len(cells) > 2 and cells[2] else None)
        if not _NAME.match(name) or name in seen:
            raise UsageError(f"{path}:{number}: '{name}' is not a usable name (a unique folder name)")
        if repo.startswith("-"):
            raise UsageError(f"{path}:{number}: '{repo}' is not a repository (a path or a URL)")
        if commit is not None and (not _COMMIT.match(commit) or ".." in commit):
            raise UsageError(f"{path}:{number}: '{commit}' is not a commit (a commit id, a branch or a tag)")
        seen.add(name)
        entries.append(RosterEntry(name, repo, commit))
    if not entries:
        raise UsageError(f"roster '{path}' lists no submissions")
    return entries


def clone(entry: RosterEntry, dest: Path, *, timeout: float = GIT_TIMEOUT_S, stopped: Stopped = never) -> None:
    """A shallow clone of `entry.repo` at its commit (the default branch's tip when none) into `dest`, within
    `timeout` seconds in all. Raises UsageError when it cannot be had, commands.Interrupted when `stopped()`."""
    deadline = time.monotonic() + timeout
    repo = str(Path(entry.repo).resolve()) if Path(entry.repo).exists() else entry.repo
    if Path(entry.repo).exists():
        repo = "file://" + repo  # a plain path ignores --depth
    git = functools.partial(_run_git, entry=entry, deadline=deadline, stopped=stopped)
    # `--` before what the roster gave: neither the repository nor the commit is ever read as an option.
    git(["git", "clone", "--quiet", "--depth", "1", "--no-tags", "--", repo, str(dest)])
    if not entry.commit:
        return
    head = head_commit(dest, stopped) or ""
    if entry.commit.lower() == head:
        return
    # A branch, a tag or a commit that is not the tip is not in a depth-1 clone: fetch exactly it. A tag named like
    # the start of the tip's id ("7") is that tag: only when nothing is called so is an abbreviated id the tip's.
    fetched = git(["git", "-C", str(dest), "fetch", "--quiet", "--depth", "1", "--", "origin", entry.commit],
                  check=not _SHORT_SHA.fullmatch(entry.commit) or not head.startswith(entry.commit.lower()))
    if fetched:
        git(["git", "-C", str(dest), "checkout", "--quiet", "--detach", "FETCH_HEAD"])


# What a clone keeps of the grader's environment: how this machine reaches a remote (a proxy, the certificates it
# trusts, the ssh agent holding the instructor's key). Not HOME: the user's git configuration (a git-lfs filter
# that would fetch from wherever the student's .lfsconfig points, hooks) takes no part in checking out a student's
# repository.
_NETWORK_VARS = ("SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
                 "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO")


def git_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of the git commands that fetch a roster's repository."""
    kept = {name: environ[name] for name in _NETWORK_VARS if name in environ}
    return {**kept, "GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin",
            "GIT_ALLOW_PROTOCOL": _GIT_PROTOCOLS}


def _run_git(argv: list[str], *, entry: RosterEntry, deadline: float, stopped: Stopped, check: bool = True) -> bool:
    """Whether git succeeded; when it did not and `check`, a UsageError that says why."""
    try:
        out = run_command(argv, timeout=max(1.0, deadline - time.monotonic()), env=git_env(os.environ),
                          stopped=stopped)
    except subprocess.TimeoutExpired as exc:
        raise UsageError(f"{entry.name}: could not check out {entry.repo}: git took more than {exc.timeout:g} s") from None
    except OSError as exc:
        raise UsageError(f"{entry.name}: git failed: {exc}") from exc
    if out.returncode != 0 and check:
        raise UsageError(f"{entry.name}: could not check out {entry.repo}"
                         f"{' at ' + entry.commit if entry.commit else ''}: {out.stderr.strip()[-300:]}")
    return out.returncode == 0


# --------------------------------------------------------------------------------------------- archives


def unpack(archive: Path, dest: Path, max_bytes: int = MAX_BYTES) -> None:
    """Unpack a student's archive into `dest`: regular files and folders only (no links, devices), every path
    inside `dest`, at most `max_bytes` in all. An archive holding a single top folder is unpacked from inside it."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                _write_all(archive, dest, max_bytes, _zip_members(zf, archive))
        else:
            with tarfile.open(archive, "r:*") as tf:
                _write_all(archive, dest, max_bytes, _tar_members(tf, archive))
    except UNREADABLE as exc:
        raise UsageError(f"{archive.name}: not a readable archive: {type(exc).__name__}: {exc}") from exc
    _lift_single_folder(dest)


Member = tuple[PurePosixPath, int, bool, Callable[[], bytes]]  # path inside, size, is a folder, its bytes
# What reading a broken, encrypted or exotic archive raises: a corrupt deflate, bz2 or LZMA stream, a member that
# needs a password (RuntimeError) or a compression method Python lacks (NotImplementedError).
UNREADABLE = (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile, tarfile.TarError,
              zlib.error, lzma.LZMAError)


def _write_all(archive: Path, dest: Path, max_bytes: int, members: Iterator[Member]) -> None:
    total = 0
    for rel, size, is_dir, read in members:
        if not rel.parts:  # "./", the archive's own root (`tar czf x.tar.gz .`)
            continue
        target = dest.joinpath(*rel.parts)
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        total += size
        if total > max_bytes:
            raise UsageError(f"{archive.name}: more than {max_bytes // (1024 * 1024)} MiB unpacked")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = read()
        if len(data) != size:  # a header that lies about the size
            raise UsageError(f"{archive.name}: member '{rel}' is not the size it claims")
        target.write_bytes(data)


def _safe(name: str, archive: Path) -> PurePosixPath:
    """A member's path inside the archive's folder (no parts: the archive's root itself); backslashes are folders,
    as a zip made on Windows has them."""
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise UsageError(f"{archive.name}: member '{name}' would land outside its folder")
    return rel


def _zip_members(zf: zipfile.ZipFile, archive: Path) -> Iterator[Member]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UsageError(f"{archive.name}: more than {MAX_MEMBERS} members")
    for info in infos:
        if stat.S_ISLNK(info.external_attr >> 16):
            continue  # a link could point anywhere: a submission's files are regular files
        is_dir = info.is_dir() or info.filename.endswith("\\")
        yield _safe(info.filename, archive), info.file_size, is_dir, functools.partial(zf.read, info)


def _tar_members(tf: tarfile.TarFile, archive: Path) -> Iterator[Member]:
    """Member by member as the stream gives them, so that the limits stop a bomb at its first oversized member or
    its member too many, before the rest is decompressed (getmembers() would read the whole stream first)."""
    for count, info in enumerate(tf, start=1):
        if count > MAX_MEMBERS:
            raise UsageError(f"{archive.name}: more than {MAX_MEMBERS} members")
        if not (info.isfile() or info.isdir()):
            continue  # links, devices, fifos: never unpacked

        def read(member: tarfile.TarInfo = info) -> bytes:
            handle = tf.extractfile(member)
            return handle.read() if handle else b""

        yield _safe(info.name, archive), info.size, info.isdir(), read


def _lift_single_folder(dest: Path) -> None:
    entries = [p for p in dest.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        inner = entries[0].rename(dest / f".unpacked-{secrets.token_hex(4)}")  # a child may share its name
        for child in list(inner.iterdir()):
            shutil.move(str(child), dest / child.name)
        inner.rmdir()
    remove_tree(dest / "__MACOSX")


def materialize_dir() -> Path:
    """An owned temporary folder for the clones and unpacked archives of one batch."""
    return make_owned_tempdir("redis-grader-class-")
