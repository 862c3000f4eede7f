"""Where a class comes from: roster CSVs of local git repositories, archives as an LMS exports them, and the
commit graded. Real git and real archives; no network (repositories are local paths and file:// URLs)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from conftest import SUBMISSIONS, alive, cmdline

from grader import batch
from grader.batch import BatchOptions, Grader, SubmissionDir, sources
from grader.errors import UsageError
from grader.workspace import open_workspace

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@example.org", "GIT_COMMITTER_NAME": "s",
           "GIT_COMMITTER_EMAIL": "s@example.org"}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], env=GIT_ENV, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A student's repository with two commits on main: the first has `first.txt`."""
    path = tmp_path / "alice-repo"
    shutil.copytree(SUBMISSIONS / "reference", path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "first")
    (path / "first.txt").write_text("only in the second commit\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "second")
    return path


# --------------------------------------------------------------------------------------------- roster


def test_roster_rows_with_and_without_header(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("name,repo,commit\nalice,/r/a,abc123\n# a comment\n\nbob,https://example.org/b.git\n")
    entries = sources.read_roster(roster)
    assert [(e.name, e.repo, e.commit) for e in entries] == [("alice", "/r/a", "abc123"),
                                                              ("bob", "https://example.org/b.git", None)]
    subs, _ = batch.find_submissions(roster, tmp_path / "out")
    assert [(s.name, s.kind, s.repo) for s in subs] == [("alice", "repo", "/r/a"),
                                                         ("bob", "repo", "https://example.org/b.git")]


@pytest.mark.parametrize("text", ["../evil,/r\n", "alice,/r\nalice,/s\n", "alice\n", ""])
def test_a_bad_roster_is_a_usage_error(tmp_path: Path, text: str) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(text)
    with pytest.raises(UsageError):
        sources.read_roster(roster)


def test_clone_at_a_commit_that_is_not_a_branch_tip(tmp_path: Path, repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD~1")
    dest = tmp_path / "clone"
    sources.clone(sources.RosterEntry("alice", str(repo), first), dest)
    assert git(dest, "rev-parse", "HEAD") == first and not (dest / "first.txt").exists()
    assert sources.git_origin(dest) == sources.Origin(first, False)
    tip = tmp_path / "tip"
    sources.clone(sources.RosterEntry("alice", f"file://{repo}", None), tip)  # a URL, the default branch's tip
    assert (tip / "first.txt").exists() and git(tip, "rev-parse", "--is-shallow-repository") == "true"


def test_a_missing_repository_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="could not check out"):
        sources.clone(sources.RosterEntry("bob", str(tmp_path / "nowhere"), None), tmp_path / "dest")


def test_a_dirty_tree_is_marked(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert sources.git_origin(repo) == sources.Origin(head, False)
    monkeypatch.chdir(repo.parent)
    assert sources.git_origin(Path(repo.name)) == sources.Origin(head, False)  # a relative path, as a CLI gets it
    (repo / "README.md").write_text("edited after the commit\n")
    assert sources.git_origin(repo) == sources.Origin(head, True)
    assert sources.git_origin(repo.parent) == sources.Origin()  # not a repository


def test_a_repositorys_own_configuration_runs_nothing(tmp_path: Path, repo: Path) -> None:
    """A student's .git/config can name commands git runs (core.fsmonitor on `git status`, the clean filter of the
    files .gitattributes names): reading the commit and the dirty marker must run none of them."""
    ran = tmp_path / "ran"
    (repo / ".gitattributes").write_text("* filter=student\n")
    git(repo, "config", "core.fsmonitor", f"touch {ran}/fsmonitor; false")
    git(repo, "config", "filter.student.clean", f"touch {ran}/clean; cat")
    ran.mkdir()
    head = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("edited after the commit\n")
    assert sources.git_origin(repo) == sources.Origin(head, True)
    with open_workspace(repo) as workspace:
        assert workspace.commit == head
    assert sorted(p.name for p in ran.iterdir()) == []
    assert git(repo, "status", "--porcelain") and sorted(p.name for p in ran.iterdir())  # the trap is real


def test_a_git_state_too_big_to_be_a_students_is_read_as_no_repository(repo: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from grader import gitinfo

    head = git(repo, "rev-parse", "HEAD")
    assert sources.git_origin(repo) == sources.Origin(head, False)
    monkeypatch.setattr(gitinfo, "_STATE_MAX_BYTES", (repo / ".git" / "index").stat().st_size - 1)
    assert sources.git_origin(repo) == sources.Origin()  # the index alone is over the cap: nothing is copied


@pytest.mark.parametrize("row, message", [
    ("alice,/r/a,--upload-pack=touch x", "'--upload-pack=touch x' is not a commit"),
    ("alice,/r/a,main..HEAD", "'main..HEAD' is not a commit"),
    ("alice,--upload-pack=touch x,abc123", "'--upload-pack=touch x' is not a repository"),
])
def test_a_roster_cell_that_git_would_read_as_an_option_is_refused(tmp_path: Path, row: str, message: str) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(f"name,repo,commit\n{row}\n")
    with pytest.raises(UsageError, match=f"roster.csv:2: {message}"):
        sources.read_roster(roster)


@pytest.mark.parametrize("repository, commit", [
    ("{repo}", "--upload-pack=touch {ran}"),  # read_roster refuses it; clone() gives it to git after `--`
    ("ext::sh -c touch% {ran}", None),  # a transport that runs a command
])
def test_clone_never_runs_what_a_roster_names(tmp_path: Path, repo: Path, repository: str, commit: str | None) -> None:
    ran = tmp_path / "ran"
    entry = sources.RosterEntry("mallory", repository.format(repo=repo, ran=ran),
                                None if commit is None else commit.format(ran=ran))
    with pytest.raises(UsageError, match="mallory: could not check out"):
        sources.clone(entry, tmp_path / "dest")
    assert not ran.exists()


def test_a_clone_keeps_how_the_machine_reaches_a_remote_and_nothing_else() -> None:
    environ = {"HOME": "/home/t", "https_proxy": "http://proxy.example:3128", "SSH_AUTH_SOCK": "/run/agent.sock",
               "GIT_SSL_CAINFO": "/etc/campus-ca.pem", "GIT_CONFIG_GLOBAL": "/tmp/x", "PYTHONPATH": "/src"}
    env = sources.git_env(environ)
    assert env == {"https_proxy": "http://proxy.example:3128", "SSH_AUTH_SOCK": "/run/agent.sock",
                   "GIT_SSL_CAINFO": "/etc/campus-ca.pem", "GIT_TERMINAL_PROMPT": "0",
                   "PATH": "/usr/local/bin:/usr/bin:/bin", "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh"}


def test_the_grader_prepares_a_roster_row_and_records_its_commit(tmp_path: Path, repo: Path) -> None:
    grader = Grader(BatchOptions(out=tmp_path / "out"))
    try:
        ready, origin = grader._prepare(SubmissionDir("alice", repo, "repo", None, f"file://{repo}"),
                                        time.monotonic())
        assert ready.path.name == "alice" and (ready.path / "backend").is_dir()
        assert ready.path.parent.name.startswith("redis-grader-class-")  # owned: swept if the batch is killed
        assert origin.commit == git(repo, "rev-parse", "HEAD") and origin.dirty is False
    finally:
        grader.close()
    assert not ready.path.exists()


# --------------------------------------------------------------------------------------------- archives


def _zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return path


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


@pytest.mark.parametrize("make", [_zip, _tar], ids=["zip", "tar.gz"])
def test_an_archive_is_unpacked_from_inside_its_single_folder(tmp_path: Path, make) -> None:
    ext = ".zip" if make is _zip else ".tar.gz"
    archive = make(tmp_path / f"alice{ext}", {"alice-main/main.py": b"app = 1\n", "alice-main/pkg/x.py": b""},
                   {"alice-main/escape": "/etc/passwd"})
    dest = tmp_path / "dest"
    sources.unpack(archive, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["main.py", "pkg", "pkg/x.py"]
    assert not any(p.is_symlink() for p in dest.rglob("*"))


@pytest.mark.parametrize("make", [_zip, _tar], ids=["zip", "tar.gz"])
@pytest.mark.parametrize("name", ["../outside.py", "/abs/main.py", "a/../../outside.py"])
def test_an_archive_cannot_write_outside_its_folder(tmp_path: Path, make, name: str) -> None:
    ext = ".zip" if make is _zip else ".tar.gz"
    archive = make(tmp_path / f"mallory{ext}", {"main.py": b"", name: b"x"})
    with pytest.raises(UsageError, match="outside its folder"):
        sources.unpack(archive, tmp_path / "a" / "b" / "dest")
    assert not (tmp_path / "outside.py").exists() and not (tmp_path / "a" / "outside.py").exists()


def test_an_archive_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {"a.bin": b"\0" * 4096, "b.bin": b"\0" * 4096})
    with pytest.raises(UsageError, match="MiB unpacked"):
        sources.unpack(archive, tmp_path / "dest", max_bytes=6000)


def test_a_class_folder_may_hold_archives_beside_folders(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    _zip(subs / "bob.zip", {"main.py": b""})
    _tar(subs / "carol.tar.gz", {"main.py": b""})
    _zip(subs / "alice.zip", {"main.py": b""})  # a folder of that name wins
    (subs / "notes.txt").write_text("x")
    found, notes = batch.find_submissions(subs, tmp_path / "out")
    assert [(s.name, s.kind) for s in found] == [("alice", "folder"), ("bob", "archive"), ("carol", "archive")]
    assert "ignored alice.zip: alice is graded from another folder or archive" in notes
    assert "ignored notes.txt: not a folder" in notes


def test_a_broken_archive_costs_its_own_row(tmp_path: Path) -> None:
    (tmp_path / "bob.zip").write_bytes(b"not a zip")
    out = tmp_path / "out"
    grader = Grader(BatchOptions(out=out))
    try:
        doc = grader.grade(SubmissionDir("bob", tmp_path / "bob.zip", "archive"))
    finally:
        grader.close()
    assert doc is not None and doc["status"] == "error" and "not a readable archive" in doc["error"]
    assert doc["submission"]["path"] == str((tmp_path / "bob.zip").resolve())
    assert (out / "bob" / "result.json").is_file()


def _corrupt_deflate(path: Path) -> Path:
    """A zip Python opens, whose member's compressed bytes are garbage (zlib.error when read)."""
    _zip(path, {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("main.py", b"app = 1\n" * 200)
    data = bytearray(path.read_bytes())
    start = 30 + len("main.py")  # the local header, then the compressed stream
    data[start:start + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    return path


def _unsupported_method(path: Path) -> Path:
    _zip(path, {"main.py": b"app = 1\n"})
    data = bytearray(path.read_bytes())
    data[8:10] = (99).to_bytes(2, "little")  # the local header's compression method: AES, which Python lacks
    central = data.rfind(b"PK\x01\x02")
    data[central + 10:central + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make", [_corrupt_deflate, _unsupported_method], ids=["corrupt-deflate", "method-99"])
def test_an_archive_python_opens_but_cannot_read_costs_its_own_row(tmp_path: Path, make) -> None:
    """A zip whose member cannot be decompressed raised zlib.error or NotImplementedError past the batch: one
    student's upload stopped the whole class, on every run."""
    archive = make(tmp_path / "bob.zip")
    with pytest.raises(UsageError, match="not a readable archive"):
        sources.unpack(archive, tmp_path / "dest")
    out = tmp_path / "out"
    grader = Grader(BatchOptions(out=out))
    try:
        doc = grader.grade(SubmissionDir("bob", archive, "archive"))
    finally:
        grader.close()
    assert doc is not None and doc["status"] == "error" and "not a readable archive" in doc["error"]
    assert (out / "bob" / "result.json").is_file()


def test_a_tarball_of_the_current_folder_and_a_zip_made_on_windows_unpack(tmp_path: Path) -> None:
    """`tar czf alice.tar.gz .` holds './' and './main.py'; a Windows zip names its folders 'proj\\app\\'."""
    tarball = tmp_path / "alice.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        root = tarfile.TarInfo("./")
        root.type = tarfile.DIRTYPE
        tf.addfile(root)
        info = tarfile.TarInfo("./main.py")
        info.size = 8
        tf.addfile(info, io.BytesIO(b"app = 1\n"))
    sources.unpack(tarball, tmp_path / "a")
    assert (tmp_path / "a" / "main.py").read_bytes() == b"app = 1\n"
    windows = tmp_path / "bob.zip"
    with zipfile.ZipFile(windows, "w") as zf:
        zf.writestr(zipfile.ZipInfo("proj\\"), b"")
        zf.writestr(zipfile.ZipInfo("proj\\app\\"), b"")
        zf.writestr("proj\\app\\main.py", b"app = 1\n")
    sources.unpack(windows, tmp_path / "b")
    assert (tmp_path / "b" / "app" / "main.py").read_bytes() == b"app = 1\n"


def test_a_tarball_is_read_member_by_member_so_a_limit_stops_it_before_the_rest(tmp_path: Path) -> None:
    """An oversized first member ends the unpacking before the rest of the stream is read: here the rest is
    corrupt, which reading every header first (a bomb's 16 GiB of them) would have run into."""
    archive = _tar(tmp_path / "bomb.tar.gz", {"big.bin": b"\0" * 8192, "more.bin": os.urandom(64 * 1024)})
    archive.write_bytes(archive.read_bytes()[:-16 * 1024])  # the stream breaks off in the second member
    with pytest.raises(UsageError, match="MiB unpacked"):
        sources.unpack(archive, tmp_path / "dest", max_bytes=4096)


def test_upper_case_archives_and_reserved_names(tmp_path: Path) -> None:
    """BOB.ZIP is an archive; a submission called like the batch's own gradebook.csv or index.html is passed over
    with a note (a roster row so named is refused), not written over the class's files."""
    subs = tmp_path / "subs"
    (subs / "gradebook.csv").mkdir(parents=True)
    _zip(subs / "BOB.ZIP", {"main.py": b""})
    _zip(subs / "index.html.zip", {"main.py": b""})
    found, notes = batch.find_submissions(subs, tmp_path / "out")
    assert [(s.name, s.kind) for s in found] == [("BOB", "archive")]
    assert any(n.startswith("ignored gradebook.csv: 'gradebook.csv' is the name of the results folder's own file")
               for n in notes)
    assert any(n.startswith("ignored index.html.zip: 'index.html'") for n in notes)
    roster = tmp_path / "roster.csv"
    roster.write_text("name,repo\nindex.html,/tmp/x\n")
    with pytest.raises(UsageError, match="'index.html' is the name of the results folder's own file"):
        batch.find_submissions(roster, tmp_path / "out")


def test_a_roster_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_bytes("name,repo\nалиса,/tmp/x\n".encode("utf-16"))
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        sources.read_roster(roster)


def test_a_roster_commit_named_like_the_start_of_the_tips_id_is_that_tag(tmp_path: Path, repo: Path) -> None:
    """A tag '7' on an older commit, while the default branch's tip id starts with 7: the tag is graded."""
    tagged = git(repo, "rev-parse", "HEAD~1")
    for n in range(64):  # new tips until one starts with a digit (10 in 16 do)
        tip = git(repo, "rev-parse", "HEAD")
        if tip[0].isdigit():
            break
        git(repo, "commit", "-q", "--allow-empty", "-m", f"tip {n}")
    tip = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", tip[0], tagged)
    dest = tmp_path / "clone"
    sources.clone(sources.RosterEntry("alice", str(repo), tip[0]), dest)
    assert git(dest, "rev-parse", "HEAD") == tagged
    dest2 = tmp_path / "clone2"
    sources.clone(sources.RosterEntry("alice", str(repo), tip[:9]), dest2)  # an abbreviated id of the tip: the tip
    assert git(dest2, "rev-parse", "HEAD") == tip


def test_ctrl_c_while_cloning_stores_nothing_and_leaves_no_git_behind(tmp_path: Path) -> None:
    """A repository that never answers (a local port that accepts and stays silent); Ctrl-C stops the clone at once
    and nothing is stored, so a resumed batch grades the student (it used to store git's death as their error)."""
    import socket
    import threading

    from grader import procfs

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    out = tmp_path / "out"
    grader = Grader(BatchOptions(out=out))
    stopper = threading.Timer(1.0, grader.stop)
    stopper.start()
    try:
        doc = grader.grade(SubmissionDir("alice", tmp_path, "repo", None, f"http://127.0.0.1:{port}/x.git"))
    finally:
        stopper.cancel()
        grader.close()
        listener.close()
    assert doc is None and not (out / "alice" / "result.json").exists()
    for _ in range(1000):  # killed: gone once each next runs (a SIGKILL takes effect then)
        left = [pid for pid in procfs.pids() if f"127.0.0.1:{port}".encode() in cmdline(pid) and alive(pid)]
        if not left:
            break
        time.sleep(0.01)
    assert left == []


# --------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_roster_and_an_archive_class_are_graded_with_their_commit(tmp_path: Path, repo: Path) -> None:
    import csv
    import sys

    from conftest import ROOT
    from test_batch import RUBRIC

    first = git(repo, "rev-parse", "HEAD~1")
    before = set(Path(tempfile_dir()).glob("redis-grader-class-*"))
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    roster = tmp_path / "roster.csv"
    roster.write_text(f"name,repo,commit\nalice,{repo},{first}\nbob,file://{repo},\n")
    archives = tmp_path / "archives"
    archives.mkdir()
    shutil.make_archive(str(archives / "carol"), "zip", SUBMISSIONS / "reference")

    def run(source: Path, out: Path) -> list[dict[str, str]]:
        argv = [sys.executable, "-m", "grader", "batch", "--runtime", "local", str(source), "--out", str(out), "--env", "current",
                "--redis", "local", "--jobs", "2", "--only", "cache.*", "--rubric", str(tmp_path / "rubric.toml")]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=280,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        with (out / "gradebook.csv").open(encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    alice, bob = run(roster, tmp_path / "out-roster")
    assert (alice["name"], alice["grade"], alice["commit"]) == ("alice", "S", first)
    assert (bob["name"], bob["grade"], bob["commit"]) == ("bob", "S", git(repo, "rev-parse", "HEAD"))
    doc = (tmp_path / "out-roster" / "alice" / "result.json").read_text()
    assert f'"commit": "{first}"' in doc and '"dirty": false' in doc and f'"path": "{repo}"' in doc
    [carol] = run(archives, tmp_path / "out-archives")
    assert (carol["name"], carol["grade"], carol["commit"]) == ("carol", "S", "")
    # The clones and unpacked archives are gone (those of another batch running meanwhile may not be).
    assert set(Path(tempfile_dir()).glob("redis-grader-class-*")) <= before


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_the_result_schema_knows_the_dirty_marker() -> None:
    import json

    import jsonschema
    from conftest import ROOT

    schema = json.loads((ROOT / "grader" / "schemas" / "result-v1.schema.json").read_text())
    doc = json.loads((ROOT / "tests" / "results" / "graded.json").read_text())
    doc["submission"].update(commit="ab" * 20, dirty=True)
    jsonschema.validate(doc, schema)
    doc["submission"]["dirty"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
