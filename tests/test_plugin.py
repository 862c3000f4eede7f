"""Checks from outside redis-grader: the example plugin of docs/writing-a-check.md, installed the way pip installs
a package (its files and a .dist-info with the entry point, in a folder on sys.path), grades the reference; a
plugin that requires a check nobody declares is refused when the checks are loaded, naming both."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SUBMISSIONS, own_rubric

from grader.registry import PLUGIN_GROUP, Registry, RegistryError
from grader.runner import GradeOptions, grade

EXAMPLE = ROOT / "examples" / "plugin" / "redis_grader_example"
RUBRIC = own_rubric("with-a-plugin", """\
[checks."app.uses_redis_url"]
points = 10
[checks."example.slow_redis"]
points = 10
latency_s = 0.02
""")


def install(site: Path, distribution: str, entry_point: str, *packages: Path) -> None:
    """What `pip install` leaves in site-packages: the code, and a .dist-info naming the entry point."""
    for package in packages:
        copy = shutil.copytree if package.is_dir() else shutil.copy
        copy(package, site / package.name)
    info = site / f"{distribution}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{entry_point}\n")


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A folder on sys.path, as site-packages is; what the test imports from it is forgotten afterwards."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith(("redis_grader_example", "broken_plugin")):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.mark.slow
def test_the_example_plugin_installed_grades_the_reference(site, tmp_path, no_leftovers):
    install(site, "redis_grader_example", "example = redis_grader_example", EXAMPLE)
    importlib.invalidate_caches()
    assert "example.slow_redis" in Registry.load()
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(RUBRIC)

    result = grade(SUBMISSIONS / "reference", GradeOptions(rubric=str(rubric), env="current", redis="local"))

    record = next(c for c in result["checks"] if c["id"] == "example.slow_redis")
    assert record["outcome"] == "passed", record
    # The rubric's latency_s reached the check as its typed setting.
    assert record["message"].startswith("with 20 ms added to every Redis round trip, GET /health answered 200")
    assert any(line.startswith("PING") for line in record["evidence"]["redis"]), record["evidence"]
    assert result["score"] == 100


def test_grader_checks_lists_an_installed_check_the_rubric_leaves_out(site):
    install(site, "redis_grader_example", "example = redis_grader_example", EXAMPLE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "grader.cli", "checks"], capture_output=True, text=True,
                          env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    listed, _, left_out = done.stdout.partition("not in this rubric:")
    assert "cache.ttl" in listed and "example.slow_redis" not in listed
    assert "example.slow_redis" in left_out and "cache.ttl" not in left_out


def test_a_plugin_requiring_an_unknown_check_is_refused_naming_both(site):
    module = site / "broken_plugin.py"
    module.write_text(
        "from grader.api import check, passed\n\n\n"
        '@check("broken.needs_nothing_real", title="broken", level="basic", requires=("cache.nope",))\n'
        "async def broken(ctx):\n"
        '    return passed("never run")\n'
    )
    install(site, "broken_plugin", "broken = broken_plugin")
    importlib.invalidate_caches()
    with pytest.raises(RegistryError, match=r"'broken\.needs_nothing_real'.*'cache\.nope'"):
        Registry.load()


def test_two_checks_with_one_id_are_refused():
    from grader.api import check, passed

    def declare() -> object:
        @check("twice.declared", title="twice", level="basic")
        async def twice(ctx: object) -> object:
            return passed("ok")

        return twice

    registry = Registry([declare()])
    with pytest.raises(RegistryError, match="twice.declared"):
        registry.add(declare())
