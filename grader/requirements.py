"""A submission's requirements, read as text and never executed: which packages to install from the index, and
which lines are left out because they would build the submission's own code or fetch code from elsewhere."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib



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
    ignored: list[str]  # what is left out, each "<line> (<why>)"

    def ignore(self, line: str, why: str) -> None:
        self.ignored.append(f"{line} ({why})")


_BUILDS_OWN_CODE = "would build and run the submission's own code"
_NOT_FROM_INDEX = "only packages from the package index are installed"
# pip options that change where packages come from; other options (--pre, --only-binary, ...) pass through.
_SOURCE_OPTIONS = re.compile(
    r"^(-i|--index-url|--extra-index-url|-f|--find-links|--trusted-host|--no-index)(\s|=|$)|^-[if]\S"
)
# The options of a requirements file passed on to the installer: none of them names a source or a file. pip takes
# any unambiguous start of a long option (`--extra-index=` is `--extra-index-url=`), so every other option line is
# left out, not only the ones listed above.
_PASSED_OPTIONS = re.compile(r"^(--pre|--prefer-binary|--only-binary|--no-binary|--require-hashes|--use-feature)(\s|=|$)")
_ARCHIVE = re.compile(r"\.(whl|zip|tar\.gz|tgz|tar\.bz2|tar\.xz|tar)$", re.IGNORECASE)
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.IGNORECASE)


def why_not_installed(requirement: str) -> str | None:
    """Why a requirement (a requirements.txt line or a PEP 508 string) is not installed; None when it is a
    plain name from the index. Only the part before options and environment markers is looked at."""
    spec = re.split(r"\s--|;", requirement, maxsplit=1)[0].strip()
    target = spec.split("@", 1)[1].strip() if "@" in spec else spec  # `name @ url` (PEP 508 direct reference)
    if _VCS.match(target):
        return f"a VCS source: {_NOT_FROM_INDEX}"
    if target.lower().startswith("file:") or re.match(r"^(\.|/|~)", target):
        return f"a local path: {_BUILDS_OWN_CODE} or read outside it"
    if "://" in target:
        return f"a direct URL: {_NOT_FROM_INDEX}"
    if "@" in spec or "/" in target or "\\" in target or _ARCHIVE.search(target):
        return f"a local path or archive: {_BUILDS_OWN_CODE} or read outside it"
    return None


def _requirement_option(line: str, path: Path, root: Path, out: _Requirements, depth: int) -> bool:
    """Handle an option line (-r, -e, -c, -i, ...); False when the line is not one of those."""
    include = re.match(r"^(-r|--requirement)\s*=?\s*(\S+)$", line)
    if include:
        # Inlined (uv would resolve it relative to a file we rewrite), and only from inside the submission.
        target = (path.parent / include.group(2)).resolve()
        if depth < 5 and target.is_file() and target.is_relative_to(root.resolve()):
            _read_requirements_txt(target, root, out, depth + 1)
        else:
            out.ignore(line, "an included file outside the submission, or missing")
    elif re.match(r"^(-e|--editable)", line):  # -e., -egit+... too
        out.ignore(line, f"an editable install: {_BUILDS_OWN_CODE}")
    elif re.match(r"^(-c|--constraint)", line):
        out.ignore(line, "a constraints file: not read")
    elif _SOURCE_OPTIONS.match(line):
        out.ignore(line, f"another package source: {_NOT_FROM_INDEX}")
    elif line.startswith("-") and not _PASSED_OPTIONS.match(line):
        out.ignore(line, "an installer option the grader does not pass on")
    else:
        return False
    return True


def _read_requirements_txt(path: Path, root: Path, out: _Requirements, depth: int = 0) -> None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {path.name}: {exc.strerror}") from exc
    text = re.sub(r"\\\r?\n", " ", text)  # a trailing backslash continues the line (pip's --hash style)
    for raw in text.splitlines():
        line = " ".join(raw.split(" #", 1)[0].split()) if not raw.lstrip().startswith("#") else ""
        if not line or _requirement_option(line, path, root, out, depth):
            continue
        why = None if line.startswith("-") else why_not_installed(line)
        if why:
            out.ignore(line, why)
        else:
            out.lines.append(line)


def _poetry_requirement(name: str, spec: Any) -> str:
    """A PEP 508 line for one [tool.poetry.dependencies] entry. Caret/tilde ranges are dropped (name only):
    a newer compatible release is a better guess than failing the install."""
    extras = ""
    if isinstance(spec, dict):
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


def _poetry_source(spec: Any) -> str | None:
    """Why a poetry dependency is not installed: it names a path, a VCS, a URL or another index."""
    if not isinstance(spec, dict):
        return None
    if "path" in spec:
        return f"a poetry path dependency: {_BUILDS_OWN_CODE} or read outside it"
    for key in ("git", "hg", "svn", "url"):
        if key in spec:
            return f"a poetry {key} dependency: {_NOT_FROM_INDEX}"
    if "source" in spec:
        return f"a poetry dependency from another source: {_NOT_FROM_INDEX}"
    return None


def _read_pyproject(path: Path, out: _Requirements) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path.name}: {exc}") from exc
    project = data.get("project")
    if isinstance(project, dict):
        for dep in project.get("dependencies") or []:
            why = why_not_installed(dep) if isinstance(dep, str) else None
            if why:
                out.ignore(dep, why)
            elif isinstance(dep, str):
                out.lines.append(dep)
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies")
    if isinstance(poetry, dict):
        for name, spec in poetry.items():
            if str(name).lower() == "python":
                continue
            why = _poetry_source(spec)
            if why:
                out.ignore(str(name), why)
            else:
                out.lines.append(_poetry_requirement(str(name), spec))


def read_requirements(files: list[Path], root: Path) -> _Requirements:
    out = _Requirements([], [])
    for path in files:
        if path.name == "pyproject.toml":
            _read_pyproject(path, out)
        else:
            _read_requirements_txt(path, root, out)
    return out
