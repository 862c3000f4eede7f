"""grader.tempdirs: a temp folder outlives a grader killed with SIGKILL only until the next grader's sweep.
Real processes, killed for real; the folders are made in the test's own temp folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader import tempdirs
from grader.tempdirs import make_owned_tempdir, owned_tempdir, sweep_orphaned_tempdirs

ROOT = Path(__file__).resolve().parents[1]

# A stand-in for a grader: makes an owned folder, says where, then waits to be killed.
OWNER = (
    "import sys, time\n"
    "from grader.tempdirs import make_owned_tempdir\n"
    "print(make_owned_tempdir('redis-grader-ws-', sys.argv[1]), flush=True)\n"
    "time.sleep(600)\n"
)


def test_the_folder_of_a_killed_owner_is_swept_and_a_live_ones_is_not(tmp_path: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert owner.stdout is not None
        folder = Path(owner.stdout.readline().strip())
        (folder / "copy").mkdir()
        (folder / "copy" / "main.py").write_text("app = None\n")
        mine = make_owned_tempdir("redis-grader-home-", tmp_path)
        assert folder.is_dir() and folder.parent == tmp_path and str(owner.pid) in folder.name

        assert sweep_orphaned_tempdirs(tmp_path) == []  # both owners are alive
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        assert folder.is_dir()  # a killed owner removes nothing
        assert sweep_orphaned_tempdirs(tmp_path) == [folder]
        assert not folder.exists() and mine.is_dir()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_folders_of_another_machine_or_of_nobody_are_never_swept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    pid = dead.stdout.strip()  # gone now, so anything it owned on this machine would be swept
    keep = [
        tmp_path / f"redis-grader-ws-0123456789ab.{pid}.12345-abcdefgh",  # another machine or boot
        tmp_path / "redis-grader-ws-abcdefgh",  # made by a grader that did not record its owner
        tmp_path / f"someone-else-{tempdirs._machine()}.{pid}.12345-abcdefgh",  # not the grader's at all
    ]
    for path in keep:
        path.mkdir()
    gone = tmp_path / f"redis-grader-ws-{tempdirs._machine()}.{pid}.12345-abcdefgh"
    gone.mkdir()
    (tmp_path / f"redis-grader-ws-{tempdirs._machine()}.{pid}.12345-file").write_text("not a folder")
    assert sweep_orphaned_tempdirs(tmp_path) == [gone]
    assert all(path.is_dir() for path in keep)


def test_owned_tempdir_is_removed_at_the_end_of_its_block(tmp_path: Path) -> None:
    with owned_tempdir("redis-grader-redis-", tmp_path) as path:
        assert path.is_dir() and path.name.startswith("redis-grader-redis-")
        (path / "dump.rdb").write_bytes(b"x")
    assert not path.exists()


def test_an_owned_folder_is_always_of_the_grader_family(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="redis-grader-"):
        make_owned_tempdir("mine-", tmp_path)


@pytest.fixture
def deep(tmp_path: Path) -> Iterator[Path]:
    """A folder for deep trees, removed by `rm -rf` whatever the test did: pytest's own clean-up of old test
    folders is shutil.rmtree, which a tree left by a failing test would stop."""
    folder = tmp_path / "deep"
    folder.mkdir()
    try:
        yield folder
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(folder)], check=False, capture_output=True)
        subprocess.run(["rm", "-rf", str(folder)], check=False, capture_output=True)


def _deep_tree(top: Path, depth: int) -> None:
    """`depth` folders one inside the other, each read-only at the bottom: made by descriptor, as a submission
    can (an absolute path that deep is longer than the system takes)."""
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("file", os.O_WRONLY | os.O_CREAT, 0o400, dir_fd=fd))
        os.chmod(fd, 0o500)  # a folder its owner cannot write to
    finally:
        os.close(fd)


def test_a_folder_nested_deeper_than_python_recurses_is_removed(deep: Path) -> None:
    """shutil.rmtree recurses once per level: a submission's 3000 nested folders made it raise RecursionError,
    which no `ignore_errors` catches, so a grading ended in a traceback and left its folder behind."""
    folder = deep / "ws"
    folder.mkdir()
    _deep_tree(folder, 3000)
    (folder / "ro").mkdir()
    (folder / "ro" / "f").write_text("x")
    os.chmod(folder / "ro", 0o500)
    tempdirs.remove_tree(folder)
    assert not folder.exists()
    tempdirs.remove_tree(folder)  # gone already: nothing to do, nothing raised


def test_the_sweep_removes_a_killed_owners_deep_folder_and_goes_on(deep: Path) -> None:
    """Left by a grader a deep tree killed, it stopped every later grader's sweep, and so every later grading."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    gone = [deep / f"redis-grader-ws-{tempdirs._machine()}.{dead.stdout.strip()}.12345-{n}" for n in "ab"]
    for folder in gone:
        folder.mkdir()
    _deep_tree(gone[0], 3000)
    assert sorted(sweep_orphaned_tempdirs(deep)) == gone
    assert not any(folder.exists() for folder in gone)
