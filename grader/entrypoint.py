"""Which FastAPI app of a submission to run (DESIGN.md §3: workspace), found by reading source with `ast`.

Importing student code in the harness process would run it; the trees come from grader.sources, the same
files and parses static analysis reads.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import UsageError
from grader.sources import parse, python_files

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
class _Module:
    rel: str  # posix path relative to the workspace root
    tree: ast.Module | None  # None: syntax error
    apps: list[tuple[str, str]]  # (attr, kind) for each module-level FastAPI app found
    guess: tuple[str, str] | None = None  # (attr, call) for `app = something(...)` when no FastAPI(...) is seen
    factories: list[str] = field(default_factory=list)  # module-level functions defined here returning FastAPI(...)


def detect_entrypoint(root: Path) -> tuple[Entrypoint | None, str | None]:
    """Find the app in `root` by AST. Returns (entrypoint, None) or (None, one-line problem)."""
    modules = _parse_all(root)
    found = _choose(root, modules, base=root)
    if found is not None:
        return found, None
    broken = sorted(m.rel for m in modules.values() if m.tree is None)
    problem = (
        "no FastAPI app found: looked in backend/app/main.py, app/main.py, main.py, every module assigning "
        "FastAPI(...) and every function returning one"
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
        app_dir, module = _run_from(root, base, base_rel, mod)
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

    # 4. No app at module level anywhere, but a factory (`def create_app(): ... return FastAPI(...)`), meant for
    # `uvicorn app.main:create_app --factory`: uvicorn calls a target that is a factory by itself.
    layouts = {base_rel + file: (app_dir, module) for file, app_dir, module in CANDIDATES
               if base == root or not file.startswith("backend/")}
    makers = [m for m in modules.values() if m.factories and under_base(m.rel)]
    makers.sort(key=lambda m: (m.rel not in layouts, m.rel.count("/"), m.rel))
    for mod in makers:
        attr = next((name for name in mod.factories if "app" in name.lower()), mod.factories[0])
        if mod.rel in layouts:
            app_dir, module = layouts[mod.rel]
            run_from = base / app_dir if base == root else base
        else:
            run_from, module = _run_from(root, base, base_rel, mod)
        return Entrypoint(run_from.resolve(), module, attr,
                          f"found the app factory {attr}() returning FastAPI(...) in {mod.rel} (no app at module level)")
    return None


def _run_from(root: Path, base: Path, base_rel: str, mod: _Module) -> tuple[Path, str]:
    """(the folder uvicorn runs from, the module's dotted name) for a module outside the fixed layouts: its import
    root under the workspace, or, under an --app-dir (`base`, `base_rel` from the root), that folder itself."""
    if base == root:
        return _import_root(root, mod)
    return base, _dotted(Path(mod.rel).relative_to(base_rel.rstrip("/")))


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


def _is_app_module(name: str) -> bool:
    # Test modules and pytest's conftest hold test doubles of the app, not the app.
    return not (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py")


def _parse_all(root: Path) -> dict[str, _Module]:
    parsed = [
        (p.relative_to(root).as_posix(), parse(p).tree)
        for p in python_files(root, skip_dirs=TEST_DIRS, keep=_is_app_module)
    ]
    defined = {rel: sorted(_factory_names(tree)) if tree else [] for rel, tree in parsed}
    factories = {name for names in defined.values() for name in names}
    return {
        rel: _Module(rel, tree, _module_apps(tree, factories) if tree else [], _guess(tree) if tree else None,
                     defined[rel])
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


def override_entrypoint(root: Path, source: Path, app: str | None, app_dir: str | None) -> Entrypoint:
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
