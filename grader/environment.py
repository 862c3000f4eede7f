"""Which Python runs the submission: this interpreter, or a venv built from the submission's requirements.

Isolated environments are built with uv and cached by the content of the requirements (plus the Python
version), so a class of 100 submissions with the same requirements builds one venv. The cache is safe
for several graders at once: one file lock per environment, built in a temp dir and renamed into place,
so a half-built environment is never used.

The submission's requirement files are read as text, never executed. Only packages from the package index
are installed: lines that would build and run the submission's own code (`-e .`, local paths) or fetch code
from elsewhere (direct URLs, VCS sources, other indexes or find-links) are left out and reported as ignored.

A cached environment is used by every later submission with the same requirements, so one submission must
not be able to change it for the next (a `.pth` file runs at every interpreter start): each environment is
read-only once built, writes no bytecode afterwards, records a manifest of its files, and is rebuilt when it
no longer matches it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import GraderError, UsageError
from grader.requirements import find_requirements, read_requirements
from grader.tempdirs import remove_tree

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - 3.10
    pass

KINDS = ("isolated", "current")
DEFAULT_PACKAGES = ("fastapi", "uvicorn", "redis")  # when the submission declares nothing
ALWAYS = ("uvicorn", "coverage")  # `python -m uvicorn` starts the app; quality.coverage measures its tests
CACHE_FORMAT = "3"  # bump to invalidate every cached environment after a change in how they are built
COMPLETE_MARKER = ".redis-grader-complete"
MANIFEST = ".redis-grader-manifest.json"
NO_BYTECODE_PTH = "redis_grader_no_bytecode.pth"
STALE_BUILD_S = 3600.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Environment:
    python: str
    kind: str  # "isolated" | "current"
    description: str  # e.g. "venv 3f2a9c (requirements.txt), cached"
    # Requirements not installed, each "<line> (<why>)": the app may fail to start for want of them.
    ignored: list[str] = field(default_factory=list)


def _python_id() -> str:
    impl = sys.implementation
    version = ".".join(str(part) for part in sys.version_info[:3])
    return f"{impl.name}-{version}-{platform.machine()}-{sys.executable}"


def environment_key(requirement_lines: list[str]) -> str:
    """The cache key: what gets installed, into which Python, built how."""
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, _python_id(), *ALWAYS, "\n", *requirement_lines):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:20]


# --------------------------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "redis-grader" / "envs"


@contextlib.contextmanager
def locked_cache_entry(cache: Path, key: str, timeout: float) -> Iterator[Path]:
    """The directory of the environment `key` in `cache` (created if missing, the entry not), its lock held while
    it is checked and built; a build may take `timeout`, so the wait for another's allows a minute more."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GraderError(f"cannot create the environment cache {cache}: {exc.strerror}") from exc
    with _file_lock(cache / f"{key}.lock", timeout=timeout + 60):
        yield cache / key


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive fcntl lock (released by the kernel if this process dies), waited for up to `timeout`."""
    with open(path, "a+b") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GraderError(
                        f"another grader has been building the same environment for over {timeout:g} s "
                        f"(lock {path}); try again later"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _venv_python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _usable(env_dir: Path) -> bool:
    # exists() follows the symlink: a venv whose base interpreter was removed is rebuilt.
    return (env_dir / COMPLETE_MARKER).is_file() and _venv_python(env_dir).exists()


def venv_manifest(env_dir: Path) -> dict[str, str]:
    """What is under the venv, entry by entry (the manifest itself aside), to tell a changed venv from its build.

    Each file by size, mtime, ctime and inode, not by content: hashing a venv's 50 MB costs seconds per
    submission, while any write, chmod, rename or os.utime moves a file's ctime, which no unprivileged process
    can set back (venvs are installed with copies, not hard links into uv's cache, so the inodes are theirs).
    .pth files, which run code at every interpreter start, are hashed as well.
    """
    manifest: dict[str, str] = {}
    _add_entries(manifest, str(env_dir), "")
    return manifest


def _add_entries(manifest: dict[str, str], folder: str, prefix: str) -> None:
    """Add venv_manifest()'s entries of `folder`, each named `prefix` + its name. Every grading checks its venv:
    scandir and plain string joins keep that to a few hundredths of a second (os.walk and relpath took 0.2 s)."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:  # unreadable (as os.walk, it is left out): its own entry's mode tells that it changed
        return
    folders = []
    for entry in entries:
        rel = prefix + entry.name
        if rel == MANIFEST:
            continue
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            manifest[rel] = "link " + os.readlink(entry.path)
        elif stat.S_ISDIR(info.st_mode):
            manifest[rel] = f"dir {info.st_mode:o}"
            folders.append(entry)
        else:
            line = f"file {info.st_mode:o} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns} {info.st_ino}"
            if entry.name.endswith(".pth") or entry.name == "pyvenv.cfg":
                line += " " + hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
            manifest[rel] = line
    for entry in folders:
        _add_entries(manifest, entry.path, f"{prefix}{entry.name}{os.sep}")


def _changed(env_dir: Path) -> str | None:
    """None when the venv is as built; else the first difference, e.g. "added lib/.../x.pth"."""
    try:
        recorded = json.loads((env_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no manifest"
    current = venv_manifest(env_dir)
    if not isinstance(recorded, dict):
        return "no manifest"
    for rel in sorted(recorded.keys() | current.keys()):
        if rel not in current:
            return f"removed {rel}"
        if rel not in recorded:
            return f"added {rel}"
        if recorded[rel] != current[rel]:
            return f"changed {rel}"
    return None


def _uv_reason(output: str) -> str:
    """One line from uv's output: its last `error:` joined with the last `cause:` after it (uv prints
    "error: No solution found ...\n  cause: Because there is no version of six==999.0 ...")."""
    lines = [line.strip().lstrip("×╰─▶│|").strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not re.fullmatch(r"[\^~\s]+", line)]  # drop caret markers
    errors = [i for i, line in enumerate(lines) if line.lower().startswith("error:")]
    if not errors:
        return lines[-1] if lines else "uv failed without output"
    first = errors[-1]
    reason = lines[first].split(":", 1)[1].strip()
    causes = [line.split(":", 1)[1].strip() for line in lines[first + 1 :] if re.match(r"(?i)(cause|caused by):", line)]
    text = f"{reason.rstrip('.:')}: {causes[-1]}" if causes else reason
    # Our file, not theirs (its path and its line numbers, which are not those of the student's file).
    return re.sub(r"`[^`]*requirements\.redis-grader\.txt`|\S*requirements\.redis-grader\.txt(:\d+)*",
                  "the requirements", text)


def _uv_bin() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found:
            return found
        raise GraderError("uv is not installed: `pip install uv` (needed to build the submission's environment)") from None
    return find_uv_bin()


def _run_uv(argv: list[str], cwd: Path, deadline: float) -> None:
    """Run uv (the harness's own tool, not sandboxed); a failure raises GraderError with uv's last line."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PYTHON", "PYTHONPATH", "PYTHONHOME")}
    env["UV_NO_PROGRESS"] = "1"
    # Trust the system's certificate store, as pip does: behind a proxy with its own CA (a campus, a company,
    # this kind of CI) uv's bundled roots fail with "invalid peer certificate".
    env.setdefault("UV_NATIVE_TLS", "1")
    proc = subprocess.Popen(
        argv,
        cwd=cwd,  # not the submission: uv must not read a uv.toml / [tool.uv] of the student's
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # so a timeout kills uv's build subprocesses too
    )
    try:
        output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GraderError("could not install the submission's requirements: uv timed out") from None
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise GraderError(f"could not install the submission's requirements: {_uv_reason(output)}")


def _build(env_dir: Path, packages: list[str], requirement_lines: list[str], deadline: float) -> None:
    """Build the venv in a temp dir next to env_dir, then rename it into place (atomic on one file system)."""
    cache = env_dir.parent
    for stale in cache.glob(f".build-{env_dir.name}-*"):  # left by a killed grader; we hold the lock
        remove_tree(stale)
    build = cache / f".build-{env_dir.name}-{uuid.uuid4().hex[:8]}"
    uv = _uv_bin()
    try:
        # --relocatable: console scripts and activation use relative paths, so the rename keeps them working.
        _run_uv([uv, "venv", "--quiet", "--no-project", "--relocatable", "--python", sys.executable, str(build)],
                cache, deadline)  # fmt: skip
        # Bytecode compiled now, so running the app writes nothing into the venv (the manifest would no longer
        # match); copies, so no file is shared with uv's cache or another venv.
        argv = [uv, "pip", "install", "--compile-bytecode", "--link-mode", "copy", "--python", str(_venv_python(build))]
        if requirement_lines:
            req_file = build / "requirements.redis-grader.txt"  # kept: shows what this env was built from
            req_file.write_text("\n".join(requirement_lines) + "\n", encoding="utf-8")
            argv += ["-r", str(req_file)]
        _run_uv(argv + packages, cache, deadline)
        for site_packages in build.glob("lib/python*/site-packages"):
            # Nothing run in the venv writes bytecode into it afterwards (pytest's assertion rewriting caches
            # its plugins' modules there): what the app and its tests run cannot change the next submission's.
            (site_packages / NO_BYTECODE_PTH).write_text("import sys; sys.dont_write_bytecode = True\n")
        (build / COMPLETE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n", encoding="utf-8")
        _make_read_only(build)  # before the manifest, which records the modes
        (build / MANIFEST).write_text(json.dumps(venv_manifest(build), indent=0, sort_keys=True), encoding="utf-8")
        if env_dir.exists():  # an incomplete, broken or changed earlier build
            remove_tree(env_dir)
        os.rename(build, env_dir)
    finally:
        if build.exists():
            remove_tree(build)


def _make_read_only(env_dir: Path) -> None:
    """Everything under the venv (its top folder aside, which holds the manifest) loses its write bits: a
    submission run by an unprivileged grader cannot change it at all, and for root the manifest still tells."""
    for dirpath, dirnames, filenames in os.walk(env_dir):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


# --------------------------------------------------------------------------------------------- entry point


def prepare_environment(
    root: Path, kind: str = "isolated", cache_dir: Path | None = None, timeout: float = 300
) -> Environment:
    """The interpreter to run the submission in root with (its requirements installed, plus uvicorn)."""
    if kind not in KINDS:
        raise UsageError(f"unknown environment kind {kind!r}: use one of {', '.join(KINDS)}")
    version = ".".join(str(part) for part in sys.version_info[:3])
    if kind == "current":
        return Environment(sys.executable, "current", f"current interpreter {sys.executable} (Python {version})")

    root = Path(root)
    files = find_requirements(root)
    reqs = read_requirements(files, root)
    if reqs.lines:
        packages = list(ALWAYS)
        source = ", ".join(str(path.relative_to(root)) for path in files)
    else:
        packages = [*DEFAULT_PACKAGES, *(p for p in ALWAYS if p not in DEFAULT_PACKAGES)]
        found = ", ".join(str(path.relative_to(root)) for path in files)
        source = (f"{found} lists no packages" if files else "no requirements file") + ": " + ", ".join(packages)

    key = environment_key(reqs.lines if reqs.lines else list(DEFAULT_PACKAGES))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    started = time.monotonic()
    with locked_cache_entry(cache, key, timeout) as env_dir:
        state = _reuse_or_build(env_dir, packages, reqs.lines, started, timeout, source if reqs.lines else "")
    description = f"venv {key[:6]} ({source}), {state}"
    if reqs.ignored:
        description += "; ignored: " + ", ".join(entry.split(" (", 1)[0] for entry in reqs.ignored[:5])
    return Environment(str(_venv_python(env_dir)), "isolated", description, list(reqs.ignored))


def _reuse_or_build(
    env_dir: Path, packages: list[str], lines: list[str], started: float, timeout: float, source: str = ""
) -> str:
    """The cached venv when it is complete and unchanged since its build; otherwise a new build. Lock held.
    A build says so on stderr (it can take a minute and would otherwise look like a hang); a reuse is silent."""
    rebuilt = ""
    if _usable(env_dir):
        change = _changed(env_dir)
        if change is None:
            return "cached"
        # A submission wrote into it (a .pth file, a patched package): the next one must not run that.
        log.warning("environment %s changed since it was built (%s): rebuilding it", env_dir, change)
        rebuilt = f" (the cached one had changed: {change})"
    log.warning("building the environment for %s (first use, cached afterwards) ...", source or "the default packages")
    _build(env_dir, packages, lines, started + timeout)
    built = f"built in {time.monotonic() - started:.1f} s"
    log.warning("... %s", built)
    return built + rebuilt
