"""grader.environment: requirement discovery (pure) and real uv-built, cached venvs."""

from __future__ import annotations

import logging
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grader.environment import (
    COMPLETE_MARKER,
    Environment,
    environment_key,
    prepare_environment,
    venv_manifest,
)
from grader.errors import GraderError, UsageError
from grader.requirements import find_requirements, read_requirements

# --------------------------------------------------------------------------------------------- discovery (pure)


def test_find_requirements_prefers_requirements_txt(tmp_path: Path) -> None:
    assert find_requirements(tmp_path) == []
    (tmp_path / "backend").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert find_requirements(tmp_path) == [tmp_path / "pyproject.toml"]
    (tmp_path / "backend" / "requirements.txt").write_text("fastapi\n")
    assert find_requirements(tmp_path) == [tmp_path / "backend" / "requirements.txt"]
    (tmp_path / "requirements.txt").write_text("redis\n")
    assert find_requirements(tmp_path) == [tmp_path / "requirements.txt", tmp_path / "backend" / "requirements.txt"]


def test_requirements_txt_lines_are_filtered_and_includes_inlined(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("redis>=5  # the client\n")
    (tmp_path / "requirements.txt").write_text(
        "# comment\n\nfastapi==0.115.0\n-r base.txt\n-e .\n./libs/mylib\n-c constraints.txt\n-r /etc/passwd\n"
        "uvicorn[standard]\nsix==1.17.0 \\\n    --hash=sha256:0123\n"
    )
    reqs = read_requirements([tmp_path / "requirements.txt"], tmp_path)
    assert reqs.lines == ["fastapi==0.115.0", "redis>=5", "uvicorn[standard]", "six==1.17.0 --hash=sha256:0123"]
    assert [entry.split(" (", 1)[0] for entry in reqs.ignored] == [
        "-e .", "./libs/mylib", "-c constraints.txt", "-r /etc/passwd"
    ]  # fmt: skip
    assert all(entry.endswith(")") and " (" in entry for entry in reqs.ignored)  # each says why


OUTSIDE_THE_INDEX = [
    "shop @ file:///home/student/shop",
    "shop@ https://example.com/shop-1.0.tar.gz",
    "https://example.com/shop-1.0-py3-none-any.whl",
    "git+https://github.com/student/shop.git@main#egg=shop",
    "shop @ git+ssh://git@github.com/student/shop.git",
    "-e git+https://github.com/student/shop.git#egg=shop",
    "-egit+https://github.com/student/shop.git#egg=shop",
    "--index-url https://pypi.example.com/simple",
    "-i https://pypi.example.com/simple",
    "--extra-index-url=https://pypi.example.com/simple",
    "-f ./wheels",
    "--find-links https://example.com/wheels",
    "-f/tmp/wheels",
    "--trusted-host pypi.example.com",
    "--no-index",
    # pip takes any unambiguous start of a long option; an option the grader does not know is never passed on.
    "--extra-index=http://127.0.0.1:9/simple",
    "--index=http://127.0.0.1:9/simple",
    "--find http://127.0.0.1:9/wheels",
    "--trusted=127.0.0.1",
    "--config-settings=editable_mode=compat",
    "libs/shop",
    "shop-1.0-py3-none-any.whl",
    "../shop",
    "~/shop",
    "/opt/shop",
]


@pytest.mark.parametrize("line", OUTSIDE_THE_INDEX)
def test_requirements_outside_the_index_are_ignored_with_a_reason(tmp_path: Path, line: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"fastapi\n{line}\nredis>=5 ; python_version >= '3.8'\n")
    reqs = read_requirements([tmp_path / "requirements.txt"], tmp_path)
    assert reqs.lines == ["fastapi", "redis>=5 ; python_version >= '3.8'"]
    assert len(reqs.ignored) == 1 and reqs.ignored[0].startswith(f"{line} (")


def test_index_packages_with_options_and_markers_are_installed(tmp_path: Path) -> None:
    lines = ["six==1.17.0 --hash=sha256:0123", "uvicorn[standard]>=0.30", "pydantic-settings~=2.0",
             "tomli ; python_version < '3.11'", "--pre", "--only-binary :all:"]  # fmt: skip
    (tmp_path / "requirements.txt").write_text("\n".join(lines) + "\n")
    reqs = read_requirements([tmp_path / "requirements.txt"], tmp_path)
    assert reqs.lines == lines and reqs.ignored == []


def test_pyproject_sources_outside_the_index_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname = 'shop'\ndependencies = ['fastapi', 'shop @ file:///tmp/shop', "
        "'lib @ https://example.com/lib.whl', 'vcs @ git+https://github.com/x/vcs.git']\n"
        "[tool.poetry.dependencies]\npython = '^3.11'\nredis = '^5'\nmylib = {path = '../mylib'}\n"
        "gitlib = {git = 'https://github.com/x/gitlib.git'}\nurllib = {url = 'https://example.com/u.whl'}\n"
        "private = {version = '1.0', source = 'company'}\n"
    )
    reqs = read_requirements([tmp_path / "pyproject.toml"], tmp_path)
    assert reqs.lines == ["fastapi", "redis"]
    ignored = [entry.split(" (", 1)[0] for entry in reqs.ignored]
    assert ignored == [
        "shop @ file:///tmp/shop", "lib @ https://example.com/lib.whl", "vcs @ git+https://github.com/x/vcs.git",
        "mylib", "gitlib", "urllib", "private",
    ]  # fmt: skip


def test_pyproject_dependencies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname = 'shop'\ndependencies = ['fastapi>=0.110', 'redis[hiredis]']\n"
        "[tool.poetry.dependencies]\npython = '^3.11'\nhttpx = '^0.27'\npydantic = '>=2,<3'\n"
        "sqlalchemy = {version = '2.0.30', extras = ['asyncio']}\nmylib = {path = '../mylib'}\n"
    )
    reqs = read_requirements([tmp_path / "pyproject.toml"], tmp_path)
    assert reqs.lines == [
        "fastapi>=0.110", "redis[hiredis]", "httpx", "pydantic>=2,<3", "sqlalchemy[asyncio]==2.0.30",
    ]  # fmt: skip
    assert [entry.split(" (", 1)[0] for entry in reqs.ignored] == ["mylib"]


def test_a_broken_pyproject_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(UsageError, match="pyproject.toml"):
        prepare_environment(tmp_path, cache_dir=tmp_path / "cache")


def test_environment_key_depends_on_content() -> None:
    assert environment_key(["six"]) == environment_key(["six"])
    assert environment_key(["six"]) != environment_key(["six==1.16.0"])
    assert environment_key(["a", "b"]) != environment_key(["a\nb"])


def test_current_environment() -> None:
    env = prepare_environment(Path("."), "current")
    assert env == Environment(sys.executable, "current", env.description, ignored=[])
    assert "current interpreter" in env.description


def test_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown environment kind"):
        prepare_environment(tmp_path, "conda")


# --------------------------------------------------------------------------------------------- real venvs (uv)


def _imports(python: str, *modules: str) -> bool:
    code = "import " + ", ".join(modules)
    return subprocess.run([python, "-c", code], capture_output=True, timeout=60, check=False).returncode == 0


def _needs_six(tmp_path: Path) -> tuple[Path, Path]:
    """A submission whose requirements name one small package, and an empty environment cache for it."""
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "requirements.txt").write_text("six\n")
    return submission, tmp_path / "cache"


def test_isolated_environment_is_built_then_cached(tmp_path: Path) -> None:
    submission, cache = _needs_six(tmp_path)

    first = prepare_environment(submission, cache_dir=cache)
    assert first.kind == "isolated"
    assert Path(first.python).is_relative_to(cache)
    assert "(requirements.txt)" in first.description
    assert "built in" in first.description
    assert _imports(first.python, "six", "uvicorn")  # uvicorn comes along always
    assert not _imports(first.python, "redis_grader")  # the harness's packages do not leak in

    second = prepare_environment(submission, cache_dir=cache)
    assert second.python == first.python
    assert second.description.endswith(", cached")


def test_a_half_built_environment_is_never_reused(tmp_path: Path) -> None:
    submission, cache = _needs_six(tmp_path)
    env = prepare_environment(submission, cache_dir=cache)
    env_dir = Path(env.python).parents[1]
    (env_dir / COMPLETE_MARKER).unlink()  # as if the build had been killed before finishing
    (cache / f".build-{env_dir.name}-deadbeef").mkdir()  # and left its temp dir behind

    again = prepare_environment(submission, cache_dir=cache)
    assert "built in" in again.description
    assert (env_dir / COMPLETE_MARKER).is_file()
    assert not (cache / f".build-{env_dir.name}-deadbeef").exists()
    assert _imports(again.python, "six")


def test_two_graders_at_once_build_one_environment(tmp_path: Path) -> None:
    submission, cache = _needs_six(tmp_path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(prepare_environment, submission, cache_dir=cache) for _ in range(2)]
        results = [future.result(timeout=300) for future in futures]
    assert len({env.python for env in results}) == 1
    assert sorted("cached" in env.description for env in results) == [False, True]  # one built, one reused
    assert [p.name for p in cache.iterdir() if p.name.startswith(".build-")] == []


@pytest.mark.parametrize("text", ["this is not a requirement!!\n", "fastapi\n\x00\x01garbage==[\n"])
def test_a_failing_install_is_one_line(tmp_path: Path, text: str) -> None:
    # An unparsable requirement: uv fails without asking any package index.
    (tmp_path / "requirements.txt").write_text(text)
    with pytest.raises(GraderError) as info:
        prepare_environment(tmp_path, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert message.startswith("could not install the submission's requirements: ")
    assert "\n" not in message
    assert "requirements.redis-grader.txt" not in message and ".build-" not in message  # our files, not theirs
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_no_requirements_installs_the_course_stack(tmp_path: Path) -> None:
    env = prepare_environment(tmp_path, cache_dir=tmp_path / "cache")
    assert "no requirements file: fastapi, uvicorn, redis" in env.description
    assert _imports(env.python, "fastapi", "uvicorn", "redis")


def test_ignored_requirements_are_reported_and_not_installed(tmp_path: Path) -> None:
    submission = tmp_path / "submission"
    (submission / "shop").mkdir(parents=True)
    (submission / "shop" / "setup.py").write_text("raise SystemExit('never run')\n")
    (submission / "requirements.txt").write_text("six\n-e ./shop\n--index-url http://127.0.0.1:9/simple\n")
    env = prepare_environment(submission, cache_dir=tmp_path / "cache")
    assert [entry.split(" (", 1)[0] for entry in env.ignored] == ["-e ./shop", "--index-url http://127.0.0.1:9/simple"]
    assert "ignored: -e ./shop, --index-url" in env.description
    assert _imports(env.python, "six")


def test_the_venv_manifest_names_every_entry_by_its_path_inside(tmp_path: Path) -> None:
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "six.py").write_text("x = 1\n")
    (site / "hook.pth").write_text("import six\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to("/usr/bin/python3")
    manifest = venv_manifest(tmp_path)
    inside = "lib/python3.11/site-packages"
    assert set(manifest) == {
        "lib", "lib/python3.11", inside, f"{inside}/six.py", f"{inside}/hook.pth", "bin", "bin/python",
    }  # fmt: skip
    assert manifest["bin/python"] == "link /usr/bin/python3"
    assert manifest["lib"].startswith("dir ")
    assert len(manifest[f"{inside}/hook.pth"].split()) == 7  # a .pth is hashed too
    assert venv_manifest(tmp_path) == manifest
    (site / "six.py").chmod(0o444)
    assert venv_manifest(tmp_path)[f"{inside}/six.py"] != manifest[f"{inside}/six.py"]


def test_a_changed_cached_environment_is_rebuilt(tmp_path: Path) -> None:
    submission, cache = _needs_six(tmp_path)
    env = prepare_environment(submission, cache_dir=cache)
    assert _imports(env.python, "six", "uvicorn")  # running the environment does not change it
    writes = subprocess.run([env.python, "-c", "import sys; print(sys.dont_write_bytecode)"], capture_output=True,
                            text=True, timeout=60, check=True)  # fmt: skip
    assert writes.stdout.strip() == "True"  # nor does anything it runs (pytest caches rewritten modules)
    assert prepare_environment(submission, cache_dir=cache).description.endswith(", cached")

    site = Path(subprocess.check_output([env.python, "-c", "import six, os; print(os.path.dirname(six.__file__))"],
                                        text=True).strip())  # fmt: skip
    assert not site.stat().st_mode & 0o222  # read-only: an unprivileged grader's submissions cannot write there
    site.chmod(0o755)  # root can anyway (and so could a submission of a grader run as root)
    marker = tmp_path / "ran"
    (site / "evil.pth").write_text(f"import os; open({str(marker)!r}, 'w').close()\n")  # runs at every start
    again = prepare_environment(submission, cache_dir=cache)
    assert "built in" in again.description and "the cached one had changed" in again.description
    assert not (site / "evil.pth").exists()
    marker.unlink(missing_ok=True)
    assert _imports(again.python, "six") and not marker.exists()
    assert prepare_environment(submission, cache_dir=cache).description.endswith(", cached")


def test_a_build_says_so_on_stderr_and_a_reuse_is_silent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "requirements.txt").write_text("six\n")
    cache = tmp_path / "cache"

    with caplog.at_level(logging.WARNING, logger="grader.environment"):
        built = prepare_environment(submission, cache_dir=cache)
    lines = [record.getMessage() for record in caplog.records if record.name == "grader.environment"]
    assert lines[0] == "building the environment for requirements.txt (first use, cached afterwards) ..."
    assert lines[1].startswith("... built in ") and lines[1].endswith(" s")
    assert "building" not in built.description  # the progress lines are not part of the result

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="grader.environment"):
        prepare_environment(submission, cache_dir=cache)
    assert [record for record in caplog.records if record.name == "grader.environment"] == []
