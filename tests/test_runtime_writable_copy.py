"""The submission's own commands may write into their own folder in the docker runtime, as they may locally: each
command gets a private, writable copy of the submission (the app keeps a read-only one), and nothing it writes
reaches the grader's copy.

The app image is PYTHON_IMAGE (default local/python:3.11-bookworm, see DESIGN.md §7)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from conftest import REDIS_IMAGE, SUBMISSIONS

from grader.runtime import activated, open_runtime
from grader.services import find_local_redis_server, start_redis

PYTHON_IMAGE = os.environ.get("PYTHON_IMAGE", "local/python:3.11-bookworm")
REDIS = "local" if find_local_redis_server() else "docker"

# A suite that writes beside itself: a sqlite database, a plain file, and pytest's own cache (no -p no:cacheprovider).
WRITES_ITS_FOLDER = '''
import sqlite3
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_a_sqlite_file_beside_the_tests():
    with sqlite3.connect(HERE / "scratch.db") as db:
        db.execute("create table if not exists seen (n integer)")
        db.execute("insert into seen values (1)")
        assert db.execute("select count(*) from seen").fetchone()[0] >= 1


def test_a_file_in_the_submission_root():
    (HERE.parent / "notes.txt").write_text("written by the suite")
    assert (HERE.parent / "notes.txt").read_text() == "written by the suite"
'''


@pytest.fixture
def writing_submission(tmp_path: Path) -> Path:
    # The reference's files (so its cached environment is reused) with a suite that writes into its folder.
    root = tmp_path / "writes-its-folder"
    shutil.copytree(SUBMISSIONS / "reference", root)
    tests = root / "backend" / "tests"
    for old in tests.glob("test_*.py"):
        old.unlink()
    (tests / "test_writes.py").write_text(WRITES_ITS_FOLDER, encoding="utf-8")
    return root


def _before(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*")}


@pytest.mark.docker
@pytest.mark.parametrize("kind", ["docker", "local"])
def test_a_suite_that_writes_into_its_own_folder_passes_in_both_runtimes(
    kind: str, writing_submission: Path, docker_engine: None
) -> None:
    root = writing_submission
    files = _before(root)
    with start_redis(REDIS, REDIS_IMAGE) as server, open_runtime(kind, PYTHON_IMAGE) as runtime, activated(runtime):
        env = runtime.prepare(root, "current")
        run = runtime.runner(server, env.python, root / "backend")
        argv = [env.python, "-m", "pytest", "-q", "-x"]
        done = asyncio.run(run(argv, timeout=120, cwd=root / "backend"))
        assert done.returncode == 0, done.output
        assert "2 passed" in done.output
    if kind == "docker":  # its writes stayed in its own copy
        assert _before(root) == files
