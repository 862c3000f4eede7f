"""The submission's Python source files: which ones count, and their parsed trees (read with `ast`, never imported).

One rule for every reader (entry point detection, static facts, lint, the submission's own tests), so a
file is either the student's code everywhere or nowhere:
- folders that are not the code under test are skipped: hidden ones (.git, .venv, .tox, .ipynb_checkpoints),
  virtualenvs (named venv, or any folder holding a pyvenv.cfg), installed or vendored packages
  (site-packages, __pypackages__, node_modules), caches and build output (__pycache__, build, dist, _build,
  buck-out: the folders ruff leaves out by default);
- symlinked files are skipped (the file they point at is read where it is);
- .py files over MAX_PY_BYTES are generated data, not code worth reading.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = frozenset(
    {"venv", "node_modules", "site-packages", "__pypackages__", "__pycache__", "build", "dist", "_build", "buck-out"}
)
MAX_PY_BYTES = 2 * 1024 * 1024
_TEST_FILE = re.compile(r"^(test_.*|.*_test)\.py$")


def is_test_file(name: str) -> bool:
    """pytest's default test module names: test_*.py and *_test.py."""
    return bool(_TEST_FILE.match(name))


def is_skipped_dir(parent: str, name: str) -> bool:
    return name in SKIP_DIRS or name.startswith(".") or os.path.isfile(os.path.join(parent, name, "pyvenv.cfg"))


def python_files(
    root: Path,
    *,
    skip_dirs: frozenset[str] = frozenset(),
    keep: Callable[[str], bool] | None = None,
) -> Iterator[Path]:
    """The submission's .py files under root, in a stable order (sorted by folder, then name).

    skip_dirs: folder names a reader leaves out on top of the shared rule (e.g. tests/ for app detection);
    keep: a filter on the file name (e.g. only test modules).
    """
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs and not is_skipped_dir(dirpath, d))
        for name in sorted(filenames):
            if not name.endswith(".py") or (keep is not None and not keep(name)):
                continue
            path = Path(dirpath, name)
            try:
                if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PY_BYTES:
                    continue
            except OSError:
                continue
            yield path


# --- parsing, once per file content -------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSource:
    lines: list[str]  # the source decoded as UTF-8 (undecodable bytes replaced), for findings' text
    tree: ast.Module | None  # None when unreadable or not valid Python; shared: never modify it
    error: Exception | None  # OSError (unreadable), SyntaxError, or ValueError/RecursionError/MemoryError


_CACHE_BYTES = 32 * 1024 * 1024  # source bytes whose trees are kept: a class's worth of submissions, not more
_cache: OrderedDict[tuple[str, str], tuple[int, ParsedSource]] = OrderedDict()
_cache_size = 0
_cache_lock = threading.Lock()


def parse(path: Path) -> ParsedSource:
    """The file's tree, parsed once per content: app detection and static analysis read the same files.

    Keyed by path and content digest (not mtime: a file rewritten within the clock's granularity would
    keep a stale tree). Trees are shared between callers, which only read them.
    """
    global _cache_size
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ParsedSource([], None, exc)
    key = (str(path), hashlib.blake2b(data, digest_size=16).hexdigest())
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit[1]
    parsed = _parse_bytes(data, path)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = (len(data), parsed)
            _cache_size += len(data)
        while _cache_size > _CACHE_BYTES and len(_cache) > 1:
            _, (size, _old) = _cache.popitem(last=False)
            _cache_size -= size
    return parsed


def _parse_bytes(data: bytes, path: Path) -> ParsedSource:
    lines = data.decode("utf-8", errors="replace").splitlines()
    try:
        return ParsedSource(lines, ast.parse(data, filename=str(path)), None)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return ParsedSource(lines, None, exc)
