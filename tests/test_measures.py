"""The project's size limits, measured: no module of grader/ or checks/ over 500 lines, no function anywhere in
the project's own code (grader/, checks/, bench/, tests/; not the fixture submissions) over cyclomatic
complexity 15, as ruff's C901 counts it with the limit pyproject.toml sets."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import tomllib
from conftest import ROOT

MAX_MODULE_LINES = 500
MAX_COMPLEXITY = 15
SIZED = ("grader", "checks")
COMPLEXITY_SCOPE = ("grader", "checks", "bench", "tests")

def ruff() -> Path:
    """The ruff installed with the grader (a pinned dependency), next to this interpreter."""
    path = Path(sys.executable).parent / "ruff"
    assert path.is_file(), f"ruff is not installed next to {sys.executable}: pip install -e '.[test]'"
    return path


def judge(offenders: dict[str, list[str]]) -> None:
    assert not offenders, "\n".join(f"{path}: {item}" for path, found in sorted(offenders.items()) for item in found)


def test_the_complexity_limit_is_configured():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["ruff"]["lint"]["mccabe"]["max-complexity"] == MAX_COMPLEXITY


def test_no_module_over_500_lines():
    offenders: dict[str, list[str]] = {}
    for folder in SIZED:
        for module in sorted((ROOT / folder).rglob("*.py")):
            lines = len(module.read_text(encoding="utf-8").splitlines())
            if lines > MAX_MODULE_LINES:
                offenders[module.relative_to(ROOT).as_posix()] = [f"{lines} lines"]
    judge(offenders)


def test_no_function_over_complexity_15():
    run = subprocess.run(
        [str(ruff()), "check", "--no-cache", "--select", "C901", "--output-format", "json", *COMPLEXITY_SCOPE],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode in (0, 1), run.stderr  # 1: findings; anything else: ruff itself failed
    offenders: dict[str, list[str]] = {}
    for finding in json.loads(run.stdout):
        path = Path(finding["filename"]).resolve().relative_to(ROOT).as_posix()
        offenders.setdefault(path, []).append(f"line {finding['location']['row']}: {finding['message']}")
    judge(offenders)


def test_checks_import_only_grader_api() -> None:
    """The check boundary: a module in checks/ imports nothing of the engine but grader.api."""
    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in sorted((root / "checks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(root)}: {name}" for name in names
                          if (name == "grader" or name.startswith("grader.")) and name != "grader.api"]
    assert not offenders, offenders
