"""A private copy of a submission and the FastAPI app found in it (DESIGN.md §3: workspace).

The harness runs, lints and pokes at the copy, never at the student's folder, and it finds the app by
reading source with `ast` only: importing student code in the harness process would run it.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import GraderError, UsageError

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
MAX_PY_BYTES = 2 * 1024 * 1024

# The fixed layouts the course uses, in order of preference: (file, app_dir, module).
CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("backend/app/main.py", "backend", "app.main"),
    ("app/main.py", ".", "app.main"),
    ("main.py", ".", "main"),
)
# Folders whose FastAPI(...) instances are test doubles, not the app.
TEST_DIRS = frozenset({"tests", "test"})
_PREFERRED_ATTRS = ("app", "application", "api")
_TARGET_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class Entrypoint:
    app_dir: Path  # the folder uvicorn runs from (inside the workspace copy)
    module: str  # "app.main"
    attr: str  # "app"
    how: str  # one line: how it was found

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}"


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
        tmp = Path(tempfile.mkdtemp(prefix="redis-grader-ws-")).resolve()
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
            entrypoint, problem = _override(root, source, app, app_dir), None
        else:
            entrypoint, problem = detect_entrypoint(root)
        yield Workspace(
            source=source,
            root=root,
            name=name,
            commit=_git_commit(source),
            entrypoint=entrypoint,
            problem=problem,
            skipped=skipped,
        )
    finally:
        _remove_tree(tmp)


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


def _remove_tree(path: Path) -> None:
    def make_writable_and_retry(func, p, _exc):  # type: ignore[no-untyped-def]
        # The app may have created read-only files or folders in its copy.
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    if sys.version_info >= (3, 12):  # `onerror` is deprecated there; the handler ignores its third argument
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)


def _git_commit(source: Path) -> str | None:
    # Only a repository rooted at the submission: a folder inside another repository (a fixture inside
    # the grader's own checkout) must not report the outer repository's commit.
    if not (source / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-c", f"safe.directory={source}", "-C", str(source), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", sha) else None


# --- detection ---------------------------------------------------------------------------------


@dataclass
class _Module:
    rel: str  # posix path relative to the workspace root
    tree: ast.Module | None  # None: syntax error
    apps: list[tuple[str, str]]  # (attr, kind) for each module-level FastAPI app found
    guess: tuple[str, str] | None = None  # (attr, call) for `app = something(...)` when no FastAPI(...) is seen


def detect_entrypoint(root: Path) -> tuple[Entrypoint | None, str | None]:
    """Find the app in `root` by AST. Returns (entrypoint, None) or (None, one-line problem)."""
    modules = _parse_all(root)
    found = _choose(root, modules, base=root)
    if found is not None:
        return found, None
    broken = sorted(m.rel for m in modules.values() if m.tree is None)
    problem = (
        "no FastAPI app found: looked in backend/app/main.py, app/main.py, main.py "
        "and every module assigning FastAPI(...)"
    )
    if broken:
        shown = ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
        problem += f" ({len(broken)} file(s) with syntax errors were not read: {shown})"
    return None, problem


def _choose(root: Path, modules: dict[str, _Module], base: Path) -> Entrypoint | None:
    """The best app under `base` (the workspace root, or an --app-dir the user gave)."""
    base_rel = "" if base == root else base.relative_to(root).as_posix() + "/"

    def under_base(rel: str) -> bool:
        return rel.startswith(base_rel)

    # 1. The fixed layouts, relative to base.
    for file, app_dir, module in CANDIDATES:
        if base != root and file.startswith("backend/"):
            continue  # with an explicit app dir the layouts are relative to it
        mod = modules.get(base_rel + file)
        if mod is None:
            continue
        run_from = base / app_dir if base == root else base
        if mod.tree is None:
            # The app will fail to start and app.starts shows the log; guessing `app` is the best bet.
            return Entrypoint(run_from.resolve(), module, "app", f"{mod.rel} has a syntax error; assuming `app` in it")
        if mod.apps:
            attr, kind = _pick_attr(mod.apps)
            return Entrypoint(run_from.resolve(), module, attr, f"found {kind} assigned to `{attr}` in {mod.rel}")

    # 2. Any other module with a module-level app: shallowest first, then by path.
    others = [m for m in modules.values() if m.apps and under_base(m.rel)]
    others.sort(key=lambda m: (m.rel.count("/"), m.rel))
    for mod in others:
        attr, kind = _pick_attr(mod.apps)
        if base == root:
            app_dir, module = _import_root(root, mod)
        else:
            app_dir, module = base, _dotted(Path(mod.rel).relative_to(base_rel.rstrip("/")))
        return Entrypoint(app_dir.resolve(), module, attr, f"found {kind} assigned to `{attr}` in {mod.rel}")

    # 3. Last resort, the fixed layouts only: `app = make_app()` with a factory we could not follow.
    # A wrong guess fails at app.starts with the app's own log, which says more than "not found".
    for file, app_dir, module in CANDIDATES:
        mod = modules.get(base_rel + file)
        if mod is None or mod.guess is None or (base != root and file.startswith("backend/")):
            continue
        attr, func = mod.guess
        run_from = base / app_dir if base == root else base
        return Entrypoint(
            run_from.resolve(), module, attr, f"guessed `{attr}` = {func}(...) in {mod.rel} (no FastAPI(...) seen)"
        )
    return None


def _pick_attr(apps: list[tuple[str, str]]) -> tuple[str, str]:
    # A module can hold a main app and mounted sub-apps; the conventional names win, else the first.
    for name in _PREFERRED_ATTRS:
        for attr, kind in apps:
            if attr == name:
                return attr, kind
    return apps[0]


def _dotted(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_root(root: Path, mod: _Module) -> tuple[Path, str]:
    """The folder from which the module's dotted path imports: walk up through packages.

    A folder counts as a package when it has __init__.py, or when the module itself imports it by name
    or uses relative imports (namespace packages: `app/` without __init__.py, imported as `app.x`).
    """
    path = root / mod.rel
    top_names, relative_level = _import_hints(mod.tree)
    folder = path.parent
    levels = 0
    while folder != root:
        is_package = (folder / "__init__.py").is_file() or folder.name in top_names or levels < relative_level
        if not is_package:
            break
        folder = folder.parent
        levels += 1
    return folder, _dotted(path.relative_to(folder))


def _import_hints(tree: ast.Module | None) -> tuple[set[str], int]:
    names: set[str] = set()
    level = 0
    if tree is None:
        return names, level
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # `from . import x` in a/b/m.py means a/b is a package; `from .. import` means a is one too.
                level = max(level, node.level)
            elif node.module:
                names.add(node.module.split(".")[0])
    return names, level


def _parse_all(root: Path) -> dict[str, _Module]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS and d not in TEST_DIRS and not d.startswith(".") and d != "site-packages"
        )
        for fn in filenames:
            if fn.endswith(".py") and not (fn.startswith("test_") or fn.endswith("_test.py") or fn == "conftest.py"):
                p = Path(dirpath, fn)
                # Symlinks would be read twice; multi-MB .py files are generated data, not an app.
                if not p.is_symlink() and p.stat().st_size <= MAX_PY_BYTES:
                    files.append(p)
    parsed = [(p.relative_to(root).as_posix(), _parse(p)) for p in files]
    factories: set[str] = set()
    for _, tree in parsed:
        if tree is not None:
            factories |= _factory_names(tree)
    return {
        rel: _Module(rel, tree, _module_apps(tree, factories) if tree else [], _guess(tree) if tree else None)
        for rel, tree in parsed
    }


def _guess(tree: ast.Module) -> tuple[str, str] | None:
    # A factory imported from somewhere we could not follow (a library, a helper of a helper).
    for node in _module_level_statements(tree.body):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id in _PREFERRED_ATTRS:
                    return t.id, ast.unparse(node.value.func)
    return None


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
        return None


def _is_fastapi_call(node: ast.expr | None) -> bool:
    # `FastAPI(...)` or `<anything>.FastAPI(...)` (fastapi.FastAPI, fa.FastAPI); a class named FastAPI
    # that is not fastapi's is too unlikely to be worth an import resolver here.
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "FastAPI") or (isinstance(f, ast.Attribute) and f.attr == "FastAPI")


def _factory_names(tree: ast.Module) -> set[str]:
    """Module-level functions that return a FastAPI(...) (directly or through a local variable)."""
    names: set[str] = set()
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        local_apps: set[str] = set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign) and _is_fastapi_call(sub.value):
                local_apps.update(t.id for t in sub.targets if isinstance(t, ast.Name))
            elif isinstance(sub, ast.AnnAssign) and _is_fastapi_call(sub.value) and isinstance(sub.target, ast.Name):
                local_apps.add(sub.target.id)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Return) and (
                _is_fastapi_call(sub.value) or (isinstance(sub.value, ast.Name) and sub.value.id in local_apps)
            ):
                names.add(node.name)
                break
    return names


def _module_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    # Module level includes the bodies of if/try/with blocks, not functions or classes.
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _module_level_statements(node.body)
            yield from _module_level_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _module_level_statements(block)
        elif isinstance(node, ast.With):
            yield from _module_level_statements(node.body)


def _module_apps(tree: ast.Module, factories: set[str]) -> list[tuple[str, str]]:
    apps: list[tuple[str, str]] = []
    for node in _module_level_statements(tree.body):
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            targets, value = [node.target.id], node.value
        else:
            continue
        kind = None
        if _is_fastapi_call(value):
            kind = "FastAPI(...)"
        elif isinstance(value, ast.Call):
            f = value.func
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if fname in factories:
                kind = f"{fname}() returning FastAPI(...)"
        if kind:
            apps.extend((t, kind) for t in targets)
    return apps


# --- overrides ---------------------------------------------------------------------------------


def _override(root: Path, source: Path, app: str | None, app_dir: str | None) -> Entrypoint:
    base = root
    if app_dir is not None:
        base = _resolve_app_dir(root, source, app_dir)
    if app is None:
        # Only the folder was given: detect inside it, module paths relative to it.
        found = _choose(root, _parse_all(root), base=base)
        if found is None:
            raise UsageError(f"no FastAPI app found under --app-dir {app_dir}; pass --app module:attr too")
        return found
    if not _TARGET_RE.match(app):
        raise UsageError(f"--app must look like module:attr (e.g. app.main:app), got {app!r}")
    module, attr = app.split(":", 1)
    if _module_file(base, module) is None:
        if app_dir is None:
            # `--app app.main:app` on a backend/ layout: run from the folder where that module exists.
            for _, folder, _ in CANDIDATES:
                alt = (root / folder).resolve()
                if alt != root.resolve() and alt.is_dir() and _module_file(alt, module) is not None:
                    return Entrypoint(alt, module, attr, f"given by --app {app} (run from {folder}/)")
        rel = module.replace(".", "/")
        where = "the submission root" if app_dir is None else f"--app-dir {app_dir}"
        raise UsageError(f"--app {app}: no {rel}.py or {rel}/__init__.py under {where}")
    how = f"given by --app {app}" + (f" --app-dir {app_dir}" if app_dir is not None else "")
    return Entrypoint(base.resolve(), module, attr, how)


def _resolve_app_dir(root: Path, source: Path, app_dir: str) -> Path:
    given = Path(app_dir).expanduser()
    if given.is_absolute():
        try:
            given = given.resolve().relative_to(source)
        except ValueError:
            raise UsageError(f"--app-dir {app_dir} is not inside the submission {source}") from None
    candidate = (root / given).resolve()
    if candidate != root.resolve() and root.resolve() not in candidate.parents:
        raise UsageError(f"--app-dir {app_dir} is not inside the submission")
    if not candidate.is_dir():
        raise UsageError(f"--app-dir {app_dir} is not a folder in the submission")
    return candidate


def _module_file(base: Path, module: str) -> Path | None:
    rel = Path(*module.split("."))
    for p in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
        if p.is_file():
            return p
    return None
