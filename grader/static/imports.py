"""Which of a submission's own files its app imports, directly or through other files (read with `ast`).

A file the app never imports is outside its request path: a one-off script that fills the leaderboard
(`populate_leaderboard.py`) may use a synchronous Redis client, whatever it is called. Imports are followed
wherever they stand in a file (in a function too: it may run in a request), resolved as Python would from the
folder the app runs from; a module imported by a computed name (importlib) is not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

from grader.sources import MAX_PY_BYTES, parse


def app_imports(root: Path, app_dir: Path, module: str) -> frozenset[str] | None:
    """The files (posix paths relative to `root`) of `module` and of every module of the submission it imports,
    transitively, importing from `app_dir`; None when `module` is no file there (nothing can be said)."""
    start = _module_file(app_dir, module)
    if start is None:
        return None
    seen: dict[Path, str] = {}
    pending = [(module, start)]
    while pending:
        name, path = pending.pop()
        if path in seen:
            continue
        seen[path] = name
        tree = parse(path).tree
        if tree is None:
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for imported in _imported_names(tree, package):
            found = _module_file(app_dir, imported)
            if found is not None and found not in seen:
                pending.append((imported, found))
    return frozenset(rel for rel in (_relative(path, root) for path in seen) if rel is not None)


def _imported_names(tree: ast.Module, package: str) -> list[str]:
    """Every dotted module name the tree imports, with the packages on the way (`import a.b` runs a and a.b):
    `from m import x` names m.x too, which is a module when x is a submodule."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is not None:
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return [prefix for name in names for prefix in _with_parents(name)]


def _absolute(module: str | None, level: int, package: str) -> str | None:
    """`from ..m import x` in package a.b.c: a.b.m; None when it climbs above the top (or names nothing)."""
    parts = package.split(".") if package and level else []
    if level - 1 > len(parts):
        return None
    return ".".join([*parts[: len(parts) - max(level - 1, 0)], *([module] if module else [])]) or None


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: n + 1]) for n in range(len(parts))]


def _module_file(app_dir: Path, dotted: str) -> Path | None:
    """The file of module `dotted` under `app_dir`, read as the static analysis reads files (grader/sources.py):
    no link, nothing over MAX_PY_BYTES; None when there is no such file."""
    if not dotted or not all(part.isidentifier() for part in dotted.split(".")):
        return None
    base = app_dir.joinpath(*dotted.split("."))
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file() and not candidate.is_symlink() and candidate.stat().st_size <= MAX_PY_BYTES:
            return candidate
    return None


def _relative(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
