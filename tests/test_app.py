"""grader.app: real uvicorn processes running tiny apps from tests/apps/, and the log diagnosis."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest

from grader import app as app_module
from grader.app import AppLaunch, RunningApp, diagnose_startup_log
from grader.sandbox import processes_with_marker
from grader.workspace import open_workspace

APPS = Path(__file__).resolve().parent / "apps"
PY = sys.executable  # the test environment has fastapi and uvicorn


def _launch(name: str, env: dict[str, str] | None = None, target: str = "main:app") -> AppLaunch:
    return AppLaunch(python=PY, app_dir=APPS / name, target=target, env=env or {})


def _nothing_left(app: RunningApp) -> None:
    assert app.process is not None
    assert processes_with_marker(app.process.marker) == []


def test_a_tiny_app_starts_and_answers() -> None:
    with RunningApp(_launch("hello", {"REDIS_URL": "redis://127.0.0.1:6399/0"})) as app:
        start = app.start()
        assert start.ready, app.log_tail()
        assert start.failure is None
        assert start.base_url == f"http://127.0.0.1:{start.port}"
        assert start.startup_s > 0
        assert app.poll() is None
        reply = httpx.get(f"{start.base_url}/products", trust_env=False).json()
        assert reply["path"] == "products"
        assert reply["redis_url"] == "redis://127.0.0.1:6399/0"  # the caller's env reaches the app
        # The readiness polls came from ready_ip, never from 127.0.0.1 (which uvicorn trusts for XFF).
        assert "hello: request from 127.0.0.2" in app.log_tail()
    _nothing_left(app)
    assert app.likely_cause() is None


def test_an_app_factory_starts_as_its_target(tmp_path: Path) -> None:
    """The entrypoint of a submission with only `def create_app()` is that function: uvicorn calls it."""
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\n\n\ndef create_app():\n    app = FastAPI()\n\n"
                                      "    @app.get('/products')\n    def products():\n        return ['made']\n\n"
                                      "    return app\n")
    with open_workspace(tmp_path) as ws:
        assert ws.entrypoint is not None and ws.entrypoint.target == "main:create_app"
        with RunningApp(AppLaunch(PY, ws.entrypoint.app_dir, ws.entrypoint.target, {})) as app:
            start = app.start()
            assert start.ready, app.log_tail()
            assert httpx.get(f"{start.base_url}/products", trust_env=False).json() == ["made"]
        _nothing_left(app)


def test_any_http_status_counts_as_ready() -> None:
    # A rate limiter may answer the polls with 429: the app is up all the same.
    with RunningApp(_launch("hello", {"HELLO_STATUS": "429"})) as app:
        assert app.start().ready, app.log_tail()
    _nothing_left(app)


def test_an_import_error_is_not_ready_and_has_a_likely_cause() -> None:
    with RunningApp(_launch("import_error")) as app:
        start = app.start()
        assert not start.ready
        assert start.failure == "exited with code 1 before answering"
        cause = app.likely_cause()
        assert cause is not None and cause.startswith("missing dependency")
        assert "redis_grader_not_installed_pkg" in cause
        assert "ModuleNotFoundError" in app.log_tail()
    _nothing_left(app)


def test_a_syntax_error_is_diagnosed(tmp_path: Path) -> None:
    # Written here, not kept in tests/apps/: a file with a syntax error would break `ruff check` of the repo.
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\n\napp = FastAPI(\n\ndef broken(:\n    pass\n")
    with RunningApp(AppLaunch(PY, tmp_path, "main:app", {})) as app:
        start = app.start()
        assert not start.ready
        cause = app.likely_cause()
    assert cause is not None and cause.startswith("syntax error")
    assert "main.py, line" in cause
    _nothing_left(app)


def test_a_wrong_module_path_is_diagnosed() -> None:
    with RunningApp(_launch("hello", target="backend.app.main:app")) as app:
        assert not app.start().ready
        cause = app.likely_cause()
    assert cause is not None and cause.startswith("wrong module path")
    _nothing_left(app)


def test_a_startup_that_never_finishes_times_out_and_is_killed() -> None:
    # The lifespan waits forever and ignores SIGTERM: only the SIGKILL after the grace stops it.
    with RunningApp(_launch("hang_startup"), start_timeout=3) as app:
        start = app.start()
        assert not start.ready
        assert start.failure == "did not answer HTTP within 3 s"
        assert start.startup_s >= 3
        assert "lifespan: waiting forever" in app.log_tail()
        assert app.likely_cause() == "startup never finished: the app's startup/lifespan code did not return"
    _nothing_left(app)


def test_a_lost_port_race_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = app_module.free_port
        # The first "free" port is taken, as if another process won the race for it.
        monkeypatch.setattr(app_module, "free_port", lambda: next(ports, None) or real_free_port())
        with RunningApp(_launch("hello")) as app:
            start = app.start()
            assert start.ready, app.log_tail()
            assert start.port != taken
    _nothing_left(app)


def test_ready_ip_must_not_be_the_trusted_proxy_address() -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        RunningApp(_launch("hello"), ready_ip="127.0.0.1")


# --------------------------------------------------------------------------------------------- diagnosis (pure)


def _diagnose(log: str, target: str = "app.main:app", app_dir: Path = Path("/nonexistent/backend")) -> str | None:
    return diagnose_startup_log(log, target, app_dir)


def test_diagnose_uvicorn_cannot_import_the_module() -> None:
    log = 'ERROR:    Error loading ASGI app. Could not import module "app.main".'
    assert _diagnose(log) == (
        "wrong module path: uvicorn could not import module 'app.main' from backend/ (is there a app/main.py?)"
    )


def test_diagnose_missing_attribute() -> None:
    log = 'ERROR:    Error loading ASGI app. Attribute "app" not found in module "app.main".'
    assert _diagnose(log) == "wrong module path: module 'app.main' has no attribute 'app' (the FastAPI app)"


def test_diagnose_uvicorn_not_installed() -> None:
    log = "/venv/bin/python: No module named uvicorn"
    assert _diagnose(log) == "missing dependency: uvicorn is not installed in the submission's environment"


def test_diagnose_own_module_vs_missing_package(tmp_path: Path) -> None:
    backend = tmp_path / "backend"
    (backend / "app").mkdir(parents=True)
    own = "ModuleNotFoundError: No module named 'app.services'"
    assert _diagnose(own, app_dir=backend).startswith("import error: No module named 'app.services'")
    wrong_root = "ModuleNotFoundError: No module named 'backend'"
    assert "the app runs from backend/" in _diagnose(wrong_root, app_dir=backend)
    missing = "ModuleNotFoundError: No module named 'sqlalchemy'"
    assert _diagnose(missing, app_dir=backend).startswith("missing dependency: No module named 'sqlalchemy'")


def test_diagnose_cannot_import_name() -> None:
    log = "ImportError: cannot import name 'get_redis' from 'app.db' (/w/backend/app/db.py)"
    assert _diagnose(log) == "import error: cannot import name 'get_redis' from 'app.db' (/w/backend/app/db.py)"


def test_diagnose_redis_unreachable_during_startup() -> None:
    log = (
        "INFO:     Waiting for application startup.\n"
        "ERROR:    Traceback (most recent call last):\n"
        "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection refused.\n"
        "ERROR:    Application startup failed. Exiting.\n"
    )
    assert _diagnose(log) == "cannot reach Redis at localhost:6379 during startup: read its address from REDIS_URL"


def test_diagnose_other_exception_during_startup() -> None:
    log = "INFO:     Waiting for application startup.\nRuntimeError: settings missing\nERROR:    Application startup failed."
    assert _diagnose(log) == "exception during startup: RuntimeError: settings missing"


def test_diagnose_nothing_recognisable() -> None:
    assert _diagnose("INFO:     Started server process [1]\n") is None


# --- The student's own frame leads the evidence of a failed start ------------------------------------------

_TRACEBACK = """INFO:     Started server process [12]
Traceback (most recent call last):
  File "/usr/lib/python3.11/site-packages/uvicorn/importer.py", line 19, in import_from_string
    module = importlib.import_module(module_str)
  File "/usr/lib/python3.11/importlib/__init__.py", line 126, in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import
  File "/tmp/rg-ws/sub/backend/app/main.py", line 3, in <module>
    from app.db import get_db
  File "/tmp/rg-ws/sub/backend/app/db.py", line 7, in <module>
    import redis_helpers
ModuleNotFoundError: No module named 'redis_helpers'
"""


def test_student_frame_is_the_last_frame_in_the_submission() -> None:
    root = Path("/tmp/rg-ws/sub")
    assert app_module.student_frame(_TRACEBACK, root) == "backend/app/db.py:7: import redis_helpers"
    only_main = _TRACEBACK.replace('  File "/tmp/rg-ws/sub/backend/app/db.py", line 7, in <module>\n'
                                   "    import redis_helpers\n", "")
    assert app_module.student_frame(only_main, root) == "backend/app/main.py:3: from app.db import get_db"


def test_student_frame_without_a_source_line_or_outside_the_submission() -> None:
    bare = 'Traceback (most recent call last):\n  File "/w/sub/main.py", line 4, in <module>\nNameError: x\n'
    assert app_module.student_frame(bare, Path("/w/sub")) == "main.py:4:"
    assert app_module.student_frame(_TRACEBACK, Path("/elsewhere")) is None
    assert app_module.student_frame("", Path("/w/sub")) is None
    assert app_module.student_frame(_TRACEBACK, Path("/tmp/rg-ws/su")) is None  # a prefix is not a folder


def test_an_import_error_submission_names_the_students_line_first() -> None:
    from grader.runner import GradeOptions, grade

    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "submissions" / "import-error"
    result = grade(fixture, GradeOptions(env="current", redis="local", start_timeout=8))
    starts = next(c for c in result["checks"] if c["id"] == "app.starts")
    assert starts["outcome"] == "failed"
    assert next(iter(starts["evidence"])) == "where"
    assert starts["evidence"]["where"] == ["backend/app/main.py:19: import app.db as database"]
