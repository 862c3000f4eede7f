"""The timing and concurrency checks give the same verdict every time, on a machine with one core kept busy.

A grade that flips between runs is the worst bug a grader can have (DESIGN §4): each fixture below is graded
five times with `--only` its timing checks while another process spins on one of the two cores, and every run
must give the catalogue's outcome. The submission's own suite (`quality.tests`) is graded too, as in every full
grading: it runs beside the timing checks, at a low processor priority, and must not move their verdicts. The measured numbers (ratios, write counts) are printed for the README.

The pure decision rules of those checks are unit-tested at the bottom (no processes, no timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import SUBMISSIONS

from checks.cache import FAIL, PASS, UNSURE, Expiry, _shorten_metadata, sample_body, write_endpoints
from checks.cache.stampede import _shorten_hash_fields, decided_fail
from checks.quality import find_test_files
from grader.proxy import Command

RUNS = 5
TIMING_CHECKS = ("ratelimit.atomic_under_load", "async.event_loop", "cache.stampede")
EXPECTED = {
    "reference": {"ratelimit.atomic_under_load": "passed", "async.event_loop": "passed", "cache.stampede": "passed"},
    "ratelimit-get-set": {"ratelimit.atomic_under_load": "failed"},
    # Judged against the app's own limit: 9 served one by one and 9 at once; 10 served, then 500s, likewise.
    "ratelimit-off-by-one": {"ratelimit.atomic_under_load": "passed"},
    "ratelimit-http-exception": {"ratelimit.atomic_under_load": "passed"},
    "sync-client": {"async.event_loop": "failed"},
    "stampede-unprotected": {"cache.stampede": "failed"},
    "stampede-xfetch": {"cache.stampede": "passed"},
    "stampede-xfetch-hash": {"cache.stampede": "passed"},
}


@pytest.fixture(scope="module")
def busy_core():
    """One core kept at 100% for the whole module, as on a loaded 2-core CI runner."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.2)
    yield
    spinner.kill()
    spinner.wait(timeout=10)


def _numbers(check: dict) -> object:
    """The measured margin of a timing check, for the printout."""
    evidence = check["evidence"]
    if check["id"] == "async.event_loop":
        return [(run["ratio"], run["serialized_round_trips"]) for run in evidence.get("runs", [])]
    if check["id"] == "cache.stampede":
        return evidence.get("expiries")
    return [evidence.get("statuses"), evidence.get("sequential")]


def _grade(path: Path, checks: list[str], out: Path) -> dict[str, dict]:
    only = [arg for check in ["app.uses_redis_url", "quality.tests", *checks] for arg in ("--only", check)]
    done = subprocess.run(
        [sys.executable, "-m", "grader.cli", "check", str(path), "--env", "current", "--redis", "local", *only,
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    return {c["id"]: c for c in json.loads(out.read_text())["checks"]}


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_timing_checks_give_the_same_verdict_every_time(fixture, busy_core, tmp_path, no_leftovers):
    expected = EXPECTED[fixture]
    seen: list[dict[str, str]] = []
    margins: dict[str, list[object]] = {check: [] for check in expected}
    for n in range(RUNS):
        checks = _grade(SUBMISSIONS / fixture, sorted(expected), tmp_path / f"run{n}.json")
        seen.append({check: checks[check]["outcome"] for check in expected})
        for check in expected:
            margins[check].append(_numbers(checks[check]))
    print(f"\n{fixture}: {json.dumps(margins, indent=1)}")
    assert all(run == expected for run in seen), f"{fixture}: outcomes {seen}, margins {margins}"


# ---- the pure rules behind cache.stampede and cache.invalidation ------------------------------------------


def _write(at: float, key: str = "products:all", value: str = '["Vue 3 Basics"]') -> Command:
    return Command(0, 1, at, "SET", (key, value, "EX", "60"), False, False, False, "+OK")


def _expiry(early: int, late: int, misses: int) -> Expiry:
    writes = [_write(0.0) for _ in range(early)] + [_write(9.0) for _ in range(late)]
    return Expiry(writes, early, misses, [], None, 0.5)


@pytest.mark.parametrize(
    ("early", "late", "misses", "verdict"),
    [
        (0, 1, 9, PASS),  # a lock: many requests missed it, one loaded the database
        (0, 2, 3, PASS),  # a lock that lost one race
        (1, 0, 0, PASS),  # XFetch refreshed it once, before it expired
        (5, 0, 0, PASS),  # XFetch's long tail, still nobody missed it
        (6, 0, 0, FAIL),
        (0, 8, 8, FAIL),  # no protection: every miss loads and writes
        (0, 4, 4, FAIL),
        (0, 3, 3, UNSURE),  # no protection on a loaded machine: too few misses to tell from luck
        (0, 1, 1, UNSURE),
        (0, 0, 0, UNSURE),
        (1, 3, 0, PASS),  # XFetch recomputes decided just before the expiry write just after it
        (0, 2, 0, PASS),  # reads hidden inside a script: the count alone decides
        (0, 6, 0, FAIL),
    ],
)
def test_stampede_verdict_reads_writes_and_misses_together(early, late, misses, verdict):
    assert _expiry(early, late, misses).verdict == verdict


def _streamed(expiry: Expiry, requests: int) -> Expiry:
    expiry.replies = [None] * requests  # only their number matters to the rules
    return expiry


@pytest.mark.parametrize(
    ("expiries", "decided"),
    [
        ([(0, 8, 8)], False),  # one stampede: XFetch may have drawn no early recompute in it
        ([(0, 8, 8), (0, 8, 8)], True),  # no protection: the same in two expiries
        ([(0, 3, 3), (0, 7, 9), (0, 4, 4), (0, 6, 6)], True),  # loaded: the small ones do not count
        ([(0, 6, 8), (0, 7, 7)], True),
        ([(0, 4, 4), (0, 5, 5), (0, 4, 4)], False),  # fails, but not past XFetch's tail: the old rule decides
        ([(1, 7, 7), (2, 6, 6)], False),  # XFetch recomputed ahead, then stampeded: writes > misses
        ([(0, 1, 9), (0, 8, 8)], False),  # a lock's expiry never counts
        ([(0, 90, 0)], True),  # written on every request, never read: the cache does not answer
        ([(6, 0, 0)], False),  # XFetch's long tail past the limit, but not on every request
    ],
)
def test_stampede_fails_early_only_on_evidence_xfetch_and_a_lock_cannot_give(expiries, decided):
    seen = [_streamed(_expiry(early, late, misses), 130) for early, late, misses in expiries]
    assert decided_fail(seen) == decided
    assert not decided or all(e.verdict != PASS for e in seen)


def test_an_expiry_stored_in_the_value_is_moved_with_the_ttl():
    now = time.time()
    raw = json.dumps({"value": [{"name": "x", "updated": now}], "delta": 0.08, "expiry": now + 60,
                      "expiry_ms": int((now + 60) * 1000)})
    moved, what = _shorten_metadata(raw, 2.0)
    value = json.loads(moved)
    assert abs(value["expiry"] - (now + 2.0)) < 1.0
    assert abs(value["expiry_ms"] / 1000 - (now + 2.0)) < 1.0
    assert value["delta"] == 0.08 and value["value"] == [{"name": "x", "updated": now}]
    assert "expiry" in what
    assert _shorten_metadata(json.dumps([{"name": "x"}]), 2.0) is None
    assert _shorten_metadata("not json", 2.0) is None


def test_an_expiry_kept_deeper_in_the_value_in_a_hash_or_as_when_it_was_computed_is_moved_too():
    """XFetch's state may sit in a nested object, in a hash's fields, be an ISO time, or be the moment the list was
    computed (good for the TTL after it): each is moved so the app sees the key's shortened life; a product's own
    timestamp (inside the list) never is."""
    now = time.time()
    nested = json.dumps({"products": [{"name": "x", "at": now}], "xfetch": {"delta": 0.08, "expiry": now + 60}})
    value = json.loads(_shorten_metadata(nested, 0.5)[0])
    assert abs(value["xfetch"]["expiry"] - (now + 0.5)) < 0.2 and value["products"] == [{"name": "x", "at": now}]
    # Computed 0.5 s ago with 59.5 s of the key's life left: it must read as computed 59.5 s ago.
    computed = json.dumps({"value": [], "computed_at": now - 0.5})
    assert abs(json.loads(_shorten_metadata(computed, 0.5, 59.5)[0])["computed_at"] - (now - 59.5)) < 0.2
    assert _shorten_metadata(computed, 0.5) is None  # without the key's remaining life nothing says when it ends
    stamp = datetime.fromtimestamp(now + 60, timezone.utc).isoformat().replace("+00:00", "Z")
    moved = json.loads(_shorten_metadata(json.dumps({"v": [], "expires": stamp}), 0.5)[0])["expires"]
    assert moved.endswith("Z") and abs(datetime.fromisoformat(moved[:-1] + "+00:00").timestamp() - (now + 0.5)) < 0.2
    naive = datetime.fromtimestamp(now, timezone.utc).replace(tzinfo=None).isoformat()  # utcnow()
    moved = json.loads(_shorten_metadata(json.dumps({"v": [], "cached_at": naive}), 0.5, 60.0)[0])["cached_at"]
    assert "+" not in moved and abs(datetime.fromisoformat(moved + "+00:00").timestamp() - (now - 59.5)) < 0.2
    fields, what = _shorten_hash_fields({"value": "[1]", "delta": "0.08", "computed_at": repr(now - 0.2)}, 0.5, 59.8)
    assert list(fields) == ["computed_at"] and abs(float(fields["computed_at"]) - (now - 59.5)) < 0.2
    assert "computed_at (when it was computed)" in what
    fields, _ = _shorten_hash_fields({"expiry_ms": str(int((now + 60) * 1000))}, 0.5, 59.8)
    assert fields["expiry_ms"].isdigit() and abs(int(fields["expiry_ms"]) / 1000 - (now + 0.5)) < 0.2
    assert _shorten_hash_fields({"value": "[1]", "delta": "0.08", "name": "x"}, 0.5, 59.8) is None


def test_write_endpoints_and_sample_body_come_from_openapi():
    openapi = {
        "paths": {
            "/products/{product_id}": {"put": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ProductIn"}}}}}},
            "/products": {"get": {}, "post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ProductIn"}}}}}},
            "/score": {"post": {}},
        },
        "components": {"schemas": {"ProductIn": {"properties": {
            "name": {"type": "string"}, "price": {"type": "number"}, "stock": {"type": "integer"},
            "tag": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}}},
    }
    endpoints = write_endpoints(openapi)
    assert [(e.method, e.template) for e in endpoints] == [("post", "/products"), ("put", "/products/{product_id}")]
    body = sample_body(endpoints[0].schema, openapi, "rg-new-1", 7.5)
    assert body == {"name": "rg-new-1", "price": 7.5, "stock": 7, "tag": "rg-new-1"}


def test_test_files_are_found_outside_virtualenvs(tmp_path):
    (tmp_path / "backend" / "tests").mkdir(parents=True)
    (tmp_path / "backend" / "tests" / "test_api.py").write_text("")
    (tmp_path / "backend" / "app_test.py").write_text("")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "test_x.py").write_text("")
    (tmp_path / "env2").mkdir()
    (tmp_path / "env2" / "pyvenv.cfg").write_text("")
    (tmp_path / "env2" / "test_y.py").write_text("")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in find_test_files(tmp_path))
    assert found == ["backend/app_test.py", "backend/tests/test_api.py"]
