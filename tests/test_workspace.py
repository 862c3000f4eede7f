"""The private copy of a submission and the detection of its FastAPI app (read by AST, never imported)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from grader.errors import GraderError, UsageError
from grader.sources import MAX_PY_BYTES, is_test_file, parse, python_files
from grader.workspace import open_workspace

APP = "from fastapi import FastAPI\n\napp = FastAPI()\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def detect(root: Path, **kw: str):  # type: ignore[no-untyped-def]
    with open_workspace(root, **kw) as ws:
        return ws.entrypoint, ws.problem, ws.root


# --- the four layouts ---------------------------------------------------------------------------


def test_backend_layout_runs_from_backend_without_init_files(tmp_path: Path) -> None:
    write(tmp_path, {"backend/app/main.py": APP, "backend/app/db.py": "", "README.md": "x"})
    ep, problem, root = detect(tmp_path)
    assert problem is None
    assert ep.app_dir == (root / "backend").resolve()
    assert (ep.module, ep.attr, ep.target) == ("app.main", "app", "app.main:app")
    assert ep.how == "found FastAPI(...) assigned to `app` in backend/app/main.py"


@pytest.mark.parametrize(("files", "app_dir", "target"), [
    pytest.param({"app/__init__.py": "", "app/main.py": APP}, "", "app.main:app", id="app-package-runs-from-root"),
    pytest.param({"main.py": "import fastapi\napi = fastapi.FastAPI(title='x')\n"}, "", "main:api", id="flat-main"),
    pytest.param({
        "src/shop/__init__.py": "",
        "src/shop/api/__init__.py": "",
        "src/shop/api/server.py": "from fastapi import FastAPI\napplication: FastAPI = FastAPI()\n",
    }, "src", "shop.api.server:application", id="other-module-walks-up-through-packages"),
    # src/app has no __init__.py, but main.py imports `app.routes`: it must run from src/ as app.main.
    pytest.param({
        "src/app/main.py": "from fastapi import FastAPI\nfrom app.routes import r\napp = FastAPI()\n",
        "src/app/routes.py": "r = 1\n",
    }, "src", "app.main:app", id="namespace-package-found-from-the-modules-own-imports"),
    pytest.param({
        "service/web.py": "from fastapi import FastAPI\nfrom .db import x\napp = FastAPI()\n",
        "service/db.py": "x = 1\n",
    }, "", "service.web:app", id="relative-imports-make-the-folder-a-package"),
])  # fmt: skip
def test_where_the_app_runs_from_and_its_target(tmp_path: Path, files: dict[str, str], app_dir: str,
                                                target: str) -> None:
    write(tmp_path, files)
    ep, _, root = detect(tmp_path)
    assert ep.app_dir == (root / app_dir).resolve()
    assert ep.target == target


def test_candidate_order_then_shallowest(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": APP, "app/main.py": APP, "backend/app/main.py": APP})
    assert detect(tmp_path)[0].how.endswith("backend/app/main.py")
    other = tmp_path / "o"
    write(other, {"deep/er/x.py": APP, "deep/y.py": APP})
    assert detect(other)[0].target == "y:app"


def test_candidate_without_an_app_falls_through(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "print('a script')\n", "web/server.py": APP})
    assert detect(tmp_path)[0].target == "server:app"


def test_factory_pattern(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/factory.py": """
            from fastapi import FastAPI
            def create_app() -> FastAPI:
                application = FastAPI()
                return application
        """,
            "app/main.py": "from app.factory import create_app\n\napp = create_app()\n",
        },
    )
    ep, _, _ = detect(tmp_path)
    assert ep.target == "app.main:app"
    assert "create_app()" in ep.how


FACTORY = """
from fastapi import FastAPI

def create_app() -> FastAPI:
    app = FastAPI()
    return app
"""


def test_an_app_factory_alone_is_the_app(tmp_path: Path) -> None:
    """`uvicorn app.main:create_app --factory`, with no `app = create_app()` anywhere: uvicorn calls a factory
    target by itself. It used to be "no FastAPI app found", so every check was skipped: 0 of 100."""
    write(tmp_path, {"backend/app/main.py": "def helper():\n    return 1\n" + FACTORY})
    ep, problem, root = detect(tmp_path)
    assert problem is None and ep.target == "app.main:create_app" and ep.app_dir == (root / "backend").resolve()
    assert ep.how == ("found the app factory create_app() returning FastAPI(...) in backend/app/main.py "
                      "(no app at module level)")


def test_an_app_factory_outside_the_fixed_layouts_is_found_too(tmp_path: Path) -> None:
    write(tmp_path, {"shop/__init__.py": "", "shop/factory.py": FACTORY, "shop/routes.py": "x = 1\n"})
    ep, problem, root = detect(tmp_path)
    assert problem is None and ep.target == "shop.factory:create_app" and ep.app_dir == root.resolve()


def test_a_module_level_app_wins_over_a_factory_elsewhere(tmp_path: Path) -> None:
    write(tmp_path, {"tools/factory.py": FACTORY, "main.py": APP})
    assert detect(tmp_path)[0].target == "main:app"


def test_unfollowed_factory_in_a_fixed_layout_is_a_guess(tmp_path: Path) -> None:
    write(tmp_path, {"app/main.py": "from somelib import build\n\napp = build(settings)\n", "tool.py": "x = run()\n"})
    ep, problem, _ = detect(tmp_path)
    assert problem is None and ep.target == "app.main:app"
    assert ep.how == "guessed `app` = build(...) in app/main.py (no FastAPI(...) seen)"


def test_prefers_app_over_mounted_sub_apps(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "from fastapi import FastAPI\nv1 = FastAPI()\napp = FastAPI()\napp.mount('/v1', v1)\n"})
    assert detect(tmp_path)[0].attr == "app"


def test_tests_folders_and_broken_files_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, {"tests/test_app.py": APP, "tests/helpers/app.py": APP, "broken.py": "def (:\n"})
    ep, problem, _ = detect(tmp_path)
    assert ep is None
    assert problem.startswith("no FastAPI app found: looked in backend/app/main.py, app/main.py, main.py")
    assert "broken.py" in problem and "\n" not in problem


def test_syntax_error_in_candidate_still_gives_an_entrypoint(tmp_path: Path) -> None:
    write(tmp_path, {"app/main.py": "from fastapi import FastAPI\napp = FastAPI(\n"})
    ep, problem, _ = detect(tmp_path)
    assert problem is None and ep.target == "app.main:app" and "syntax error" in ep.how


def test_never_imports_submission_code(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    write(tmp_path, {"main.py": f"open({str(marker)!r}, 'w').close()\n" + APP})
    assert detect(tmp_path)[0].target == "main:app"
    assert not marker.exists()


def test_one_rule_for_the_submissions_source_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/main.py": APP,
            "app/test_main.py": "",
            "venv/lib/x.py": "",
            "env311/pyvenv.cfg": "",
            "env311/y.py": "",
            ".ipynb_checkpoints/main.py": "",
            "node_modules/z.py": "",
            "lib/site-packages/w.py": "",
            "notes.txt": "",
        },
    )
    (tmp_path / "data.py").write_bytes(b"#" * (MAX_PY_BYTES + 1))  # generated data, not code
    (tmp_path / "linked.py").symlink_to(tmp_path / "app" / "main.py")
    rel = [p.relative_to(tmp_path).as_posix() for p in python_files(tmp_path)]
    assert rel == ["app/main.py", "app/test_main.py"]
    assert [p.name for p in python_files(tmp_path, keep=is_test_file)] == ["test_main.py"]


def test_a_file_is_parsed_again_only_when_its_content_changes(tmp_path: Path) -> None:
    path = write(tmp_path, {"m.py": "x = 1\n"}) / "m.py"
    first = parse(path)
    assert parse(path) is first
    path.write_text("x = 2\n")  # same size, possibly the same mtime: the content decides
    assert parse(path) is not first and parse(path).tree is not None
    path.write_text("def (:\n")
    assert parse(path).tree is None and isinstance(parse(path).error, SyntaxError)


# --- overrides ----------------------------------------------------------------------------------


def test_override_app_and_app_dir(tmp_path: Path) -> None:
    write(tmp_path, {"backend/service/entry.py": APP, "main.py": APP})
    ep, _, root = detect(tmp_path, app="service.entry:app", app_dir="backend")
    assert ep.app_dir == (root / "backend").resolve() and ep.target == "service.entry:app"
    assert ep.how == "given by --app service.entry:app --app-dir backend"


def test_override_app_dir_may_be_an_absolute_path_inside_the_submission(tmp_path: Path) -> None:
    write(tmp_path, {"backend/app/main.py": APP})
    ep, _, root = detect(tmp_path, app="app.main:app", app_dir=str(tmp_path / "backend"))
    assert ep.app_dir == (root / "backend").resolve()


def test_override_app_alone_finds_the_backend_folder(tmp_path: Path) -> None:
    write(tmp_path, {"backend/app/main.py": APP})
    ep, _, root = detect(tmp_path, app="app.main:api")
    assert ep.app_dir == (root / "backend").resolve() and ep.target == "app.main:api"


def test_override_app_dir_alone_detects_inside_it(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": APP, "svc/app/main.py": APP})
    ep, _, root = detect(tmp_path, app_dir="svc")
    assert ep.app_dir == (root / "svc").resolve() and ep.target == "app.main:app"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"app": "main"}, "--app must look like module:attr"),
        ({"app": "main:app:x"}, "--app must look like module:attr"),
        ({"app": "nothere:app"}, "no nothere.py or nothere/__init__.py"),
        ({"app": "main:app", "app_dir": "nope"}, "is not a folder in the submission"),
        ({"app": "main:app", "app_dir": "../.."}, "is not inside the submission"),
        ({"app": "main:app", "app_dir": "/etc"}, "is not inside the submission"),
        ({"app_dir": "empty"}, "no FastAPI app found under --app-dir empty"),
    ],
)
def test_bad_overrides_are_usage_errors(tmp_path: Path, kw: dict[str, str], message: str) -> None:
    write(tmp_path, {"main.py": APP, "empty/readme.txt": "x"})
    with pytest.raises(UsageError, match=message) as info:
        detect(tmp_path, **kw)
    assert "\n" not in str(info.value)


# --- the copy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", ["missing", "file"])
def test_bad_path_is_a_usage_error(tmp_path: Path, make: str) -> None:
    target = tmp_path / "sub"
    if make == "file":
        target.write_text("x")
    with pytest.raises(UsageError, match="submission path") as info, open_workspace(target):
        pass
    assert info.value.exit_code == 2


def test_copy_skips_caches_and_virtualenvs_and_is_removed(tmp_path: Path) -> None:
    src = write(
        tmp_path / "alice",
        {
            "main.py": APP,
            ".venv/lib/site.py": "x",
            "venv/x.py": "x",
            "env311/pyvenv.cfg": "home = /usr",
            "env311/lib/x.py": "",
            ".git/HEAD": "ref",
            "node_modules/a.js": "",
            "app/__pycache__/m.cpython-311.pyc": "",
            "app/old.pyc": "",
            ".pytest_cache/v": "",
            "data/keep.json": "{}",
        },
    )
    with open_workspace(src) as ws:
        assert ws.name == "alice" and ws.source == src.resolve()
        assert ws.root.name == "alice" and ws.root != src
        copied = sorted(p.relative_to(ws.root).as_posix() for p in ws.root.rglob("*") if p.is_file())
        assert copied == ["data/keep.json", "main.py"]
        tmp = ws.root.parent
    assert not tmp.exists()
    assert (src / ".venv/lib/site.py").exists()  # the source is untouched


def test_temp_dir_removed_on_error_and_read_only_files(tmp_path: Path) -> None:
    src = write(tmp_path / "s", {"main.py": APP})
    with pytest.raises(RuntimeError), open_workspace(src) as ws:
        tmp = ws.root.parent
        locked = ws.root / "locked"
        locked.mkdir()
        (locked / "f").write_text("x")
        locked.chmod(0o500)
        raise RuntimeError("boom")
    assert not tmp.exists()


def test_symlinks_copied_as_links_only_inside(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    src = write(tmp_path / "s", {"main.py": APP, "conf/real.env": "A=1"})
    os.symlink("conf/real.env", src / "inside.env")
    os.symlink("../secret.txt", src / "escape.txt")
    os.symlink(str(src / "conf/real.env"), src / "absolute.env")
    os.symlink("nowhere", src / "dangling")
    os.symlink("../..", src / "conf/up")  # a directory link out of the submission: never followed
    with open_workspace(src) as ws:
        assert (ws.root / "inside.env").is_symlink()
        assert (ws.root / "inside.env").read_text() == "A=1"
        for gone in ("escape.txt", "absolute.env", "dangling", "conf/up"):
            assert not os.path.lexists(ws.root / gone)
        assert ws.skipped == ["absolute.env", "conf/up", "dangling", "escape.txt"]


def test_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write(tmp_path / "s", {"main.py": APP, "big.bin": "x" * 5000})
    temp_root = tmp_path / "temp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    with pytest.raises(GraderError, match="larger than") as info, open_workspace(src, max_bytes=4096):
        pass
    assert not isinstance(info.value, UsageError) and "\n" not in str(info.value)
    assert list(temp_root.iterdir()) == []  # the partial copy is gone


def test_commit_of_a_git_submission(tmp_path: Path) -> None:
    src = write(tmp_path / "repo", {"main.py": APP})
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@e", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    with open_workspace(src) as ws:
        assert ws.commit == head
        assert not (ws.root / ".git").exists()
    # A folder inside that repository is not itself a repository.
    sub = write(src / "sub", {"main.py": APP})
    with open_workspace(sub) as ws:
        assert ws.commit is None
