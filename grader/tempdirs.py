"""Temporary folders that a grader killed with SIGKILL does not leave behind for good.

A grader removes its temporary folders (workspace copies, the sandbox's homes, local Redis data) on its way
out, but SIGKILL gives it no way out. So each folder's name records which process owns it (the same identity
as a Redis container's owner label, procfs.identity: machine, boot, pid and start time), and the next grader
on this machine removes the folders whose owner is gone. A folder of a live grader, of another machine or
boot sharing the temp folder, or of another user is never touched.

    redis-grader-ws-<machine>.<pid>.<start>-<random>   machine: a digest of the host name and boot id
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from grader import procfs

log = logging.getLogger(__name__)

FAMILY = "redis-grader-"  # every owned folder's name starts with this: the sweep looks at nothing else
_OWNED = re.compile(r"(?P<machine>[0-9a-f]{12})\.(?P<pid>\d+)\.(?P<start>\d+)-[^.]+$")


def _machine() -> str:
    """This machine and boot, short enough for a file name (an identity's host part may hold any character)."""
    return hashlib.sha256(f"{socket.gethostname()}/{procfs.boot_id()}".encode()).hexdigest()[:12]


def make_owned_tempdir(prefix: str, dir: str | Path | None = None) -> Path:
    """Like tempfile.mkdtemp(prefix=prefix, dir=dir), as a Path; the name also records this process as the
    owner, so sweep_orphaned_tempdirs() removes it once this process is gone. Remove it as any other folder."""
    if not prefix.startswith(FAMILY):
        raise ValueError(f"an owned temp folder's prefix starts with {FAMILY!r}, not {prefix!r}")
    me = os.getpid()
    info = procfs.stat(me)
    start = info.start_ticks if info is not None else 0  # no /proc: never judged gone (see _owner)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{_machine()}.{me}.{start}-", dir=dir))


@contextlib.contextmanager
def owned_tempdir(prefix: str, dir: str | Path | None = None) -> Iterator[Path]:
    """An owned temp folder (make_owned_tempdir) for the `with` block, removed at its end."""
    path = make_owned_tempdir(prefix, dir)
    try:
        yield path
    finally:
        remove_tree(path)


def remove_tree(path: str | Path) -> None:
    """Remove the folder `path` whatever a submission made of it, never raising (what cannot be removed stays).

    Its files and folders may be read-only: each is made writable, then removed. It may be nested deeper than
    Python's recursion limit (shutil.rmtree recurses once per level; `mkdir -p a/a/a/...` a few thousand times
    is enough), and deeper than an absolute path can name: coreutils' `rm -rf` walks it by descriptors, so it
    takes such a tree then."""
    root = os.fspath(path)
    if not os.path.lexists(root):
        return

    def make_writable_and_retry(func, p, _exc):  # type: ignore[no-untyped-def]
        with contextlib.suppress(OSError):
            if p != root:  # the folder holding `path` is not the submission's to open up
                os.chmod(os.path.dirname(p), stat.S_IRWXU)
            if not os.path.islink(p):  # chmod would change the link's target
                os.chmod(p, stat.S_IRWXU)
            func(p)

    try:
        if sys.version_info >= (3, 12):  # `onerror` is deprecated there; the handler ignores its third argument
            shutil.rmtree(root, onexc=make_writable_and_retry)
        else:
            shutil.rmtree(root, onerror=make_writable_and_retry)
        return
    except (RecursionError, OSError) as exc:
        log.debug("removing %s the slow way: %s", root, type(exc).__name__)
    # chmod -R does not follow the symbolic links it meets; rm -rf removes links, never what they point to.
    for argv in (["chmod", "-R", "u+rwx", "--", root], ["rm", "-rf", "--", root]):
        with contextlib.suppress(OSError):
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)


def _owner(name: str) -> str | None:
    """The identity of the process that owns the folder `name`, or None when the name is not an owned folder
    of this machine and boot."""
    found = _OWNED.search(name)
    if not name.startswith(FAMILY) or found is None or found["machine"] != _machine() or found["start"] == "0":
        return None
    return f"{socket.gethostname()}/{procfs.boot_id()}/{found['pid']}/{found['start']}"


def sweep_orphaned_tempdirs(root: str | Path | None = None) -> list[Path]:
    """Remove the owned temp folders in `root` (the temp folder) whose owner is gone; the folders removed.
    Never raises: a folder that cannot be removed now is left for the next sweep."""
    removed = []
    root = Path(root or tempfile.gettempdir())
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    uid = os.getuid()
    for entry in entries:
        owner = _owner(entry.name)
        if owner is None or not procfs.identity_gone(owner):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError as exc:
            log.debug("orphaned temp folder %s: %s", entry.path, exc)
            continue
        remove_tree(entry.path)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary folder(s) left by a grader that was killed", len(removed))
    return removed
