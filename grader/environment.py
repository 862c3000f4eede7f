"""Which Python runs the submission: this interpreter, or a venv built from the submission's requirements.

Isolated environments are built with uv and cached by the content of the requirements (plus the Python
version), so a class of 100 submissions with the same requirements builds one venv. The cache is safe
for several graders at once: one file lock per environment, built in a temp dir and renamed into place,
so a half-built environment is never used.

The submission's requirement files are read as text, never executed; lines that would build and run
the submission's own code (`-e .`, local paths) are left out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import GraderError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

KINDS = ("isolated", "current")
DEFAULT_PACKAGES = ("fastapi", "uvicorn", "redis")  # when the submission declares nothing
ALWAYS = ("uvicorn",)  # the harness starts the app with `python -m uvicorn`
CACHE_FORMAT = "1"  # bump to invalidate every cached environment after a change in how they are built
COMPLETE_MARKER = ".redis-grader-complete"
STALE_BUILD_S = 3600.0


@dataclass(frozen=True)
class Environment:
    python: str
    kind: str  # "isolated" | "current"
    description: str  # e.g. "venv 3f2a9c (requirements.txt), cached"


# --------------------------------------------------------------------------------------------- requirements


def find_requirements(root: Path) -> list[Path]:
    """requirements.txt in the root and/or backend/; if there is none, pyproject.toml there."""
    root = Path(root)
    places = (root, root / "backend")
    found = [place / "requirements.txt" for place in places if (place / "requirements.txt").is_file()]
    if found:
        return found
    return [place / "pyproject.toml" for place in places if (place / "pyproject.toml").is_file()]


@dataclass
class _Requirements:
    lines: list[str]  # what uv installs (besides ALWAYS)
    ignored: list[str]  # lines left out (editable/local installs, constraints)


_LOCAL = re.compile(r"^(\.|/|~|file:)")


def _read_requirements_txt(path: Path, root: Path, out: _Requirements, depth: int = 0) -> None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {path.name}: {exc.strerror}") from exc
    text = re.sub(r"\\\r?\n", " ", text)  # a trailing backslash continues the line (pip's --hash style)
    for raw in text.splitlines():
        line = " ".join(raw.split(" #", 1)[0].split()) if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        include = re.match(r"^(-r|--requirement)\s*=?\s*(\S+)$", line)
        if include:
            # Inlined (uv would resolve it relative to a file we rewrite), and only from inside the submission.
            target = (path.parent / include.group(2)).resolve()
            if depth < 5 and target.is_file() and target.is_relative_to(root.resolve()):
                _read_requirements_txt(target, root, out, depth + 1)
            else:
                out.ignored.append(line)
            continue
        if re.match(r"^(-e|--editable|-c|--constraint)\b", line) or _LOCAL.match(line):
            out.ignored.append(line)  # would build (run) the submission's own setup code, or reads outside it
            continue
        out.lines.append(line)


def _poetry_requirement(name: str, spec: Any) -> str | None:
    """A PEP 508 line for one [tool.poetry.dependencies] entry. Caret/tilde ranges are dropped (name only):
    a newer compatible release is a better guess than failing the install."""
    if name.lower() == "python":
        return None
    extras = ""
    if isinstance(spec, dict):
        if "path" in spec or "git" in spec or "url" in spec:
            return None
        if spec.get("extras"):
            extras = "[" + ",".join(str(e) for e in spec["extras"]) + "]"
        spec = spec.get("version", "*")
    if not isinstance(spec, str):
        return name + extras
    spec = spec.strip()
    if spec and spec[0] in "<>=!" and "^" not in spec and "~" not in spec.lstrip("~="):
        return f"{name}{extras}{spec}"
    if re.fullmatch(r"\d+(\.\d+)*", spec):
        return f"{name}{extras}=={spec}"
    return name + extras


def _read_pyproject(path: Path, out: _Requirements) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path.name}: {exc}") from exc
    project = data.get("project")
    if isinstance(project, dict):
        out.lines.extend(str(dep) for dep in project.get("dependencies") or [] if isinstance(dep, str))
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies")
    if isinstance(poetry, dict):
        for name, spec in poetry.items():
            line = _poetry_requirement(str(name), spec)
            if line:
                out.lines.append(line)
            elif name.lower() != "python":
                out.ignored.append(f"{name} (poetry path/git dependency)")


def read_requirements(files: list[Path], root: Path) -> _Requirements:
    out = _Requirements([], [])
    for path in files:
        if path.name == "pyproject.toml":
            _read_pyproject(path, out)
        else:
            _read_requirements_txt(path, root, out)
    return out


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
    return re.sub(r"`[^`]*requirements\.redis-grader\.txt`", "the requirements", text)  # our file, not theirs


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
        shutil.rmtree(stale, ignore_errors=True)
    build = cache / f".build-{env_dir.name}-{uuid.uuid4().hex[:8]}"
    uv = _uv_bin()
    try:
        # --relocatable: console scripts and activation use relative paths, so the rename keeps them working.
        _run_uv([uv, "venv", "--quiet", "--no-project", "--relocatable", "--python", sys.executable, str(build)],
                cache, deadline)  # fmt: skip
        argv = [uv, "pip", "install", "--python", str(_venv_python(build))]
        if requirement_lines:
            req_file = build / "requirements.redis-grader.txt"  # kept: shows what this env was built from
            req_file.write_text("\n".join(requirement_lines) + "\n", encoding="utf-8")
            argv += ["-r", str(req_file)]
        _run_uv(argv + packages, cache, deadline)
        (build / COMPLETE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n", encoding="utf-8")
        if env_dir.exists():  # an incomplete or broken earlier build
            shutil.rmtree(env_dir)
        os.rename(build, env_dir)
    finally:
        shutil.rmtree(build, ignore_errors=True)


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
        packages = list(DEFAULT_PACKAGES)
        found = ", ".join(str(path.relative_to(root)) for path in files)
        source = (f"{found} lists no packages" if files else "no requirements file") + ": " + ", ".join(packages)

    key = environment_key(reqs.lines if reqs.lines else list(DEFAULT_PACKAGES))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GraderError(f"cannot create the environment cache {cache}: {exc.strerror}") from exc
    env_dir = cache / key
    started = time.monotonic()
    with _file_lock(cache / f"{key}.lock", timeout=timeout + 60):
        if _usable(env_dir):
            state = "cached"
        else:
            _build(env_dir, packages, reqs.lines, started + timeout)
            state = f"built in {time.monotonic() - started:.1f} s"
    description = f"venv {key[:6]} ({source}), {state}"
    if reqs.ignored:
        description += "; ignored: " + ", ".join(reqs.ignored[:5])
    return Environment(str(_venv_python(env_dir)), "isolated", description)
