"""A route of the contract the app does not have is one clear failure, never a string of symptoms: the limiter
checks move to another plain GET route the app declares, and a missing /health fails once with the app's routes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from checks.limited_route import limited_route
from grader.runner import GradeOptions, grade

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "submissions" / "reference"


def _variant(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    """The reference submission with its main module edited."""
    root = tmp_path / "submission"
    shutil.copytree(REFERENCE, root)
    main = root / "backend" / "app" / "main.py"
    text = main.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    main.write_text(text)
    return root


def _checks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in result["checks"]}


def test_limiter_is_tried_on_another_get_route_when_products_is_missing(tmp_path):
    root = _variant(tmp_path, ('@app.get("/products")', '@app.get("/items")'),
                    ('@app.post("/products", status_code=201)', '@app.post("/items", status_code=201)'),
                    ('@app.put("/products/{product_id}")', '@app.put("/items/{product_id}")'))
    result = grade(root, GradeOptions(env="current", redis="local", only=("ratelimit.*", "app.*")))
    checks = _checks(result)
    limiter = {cid: c for cid, c in checks.items() if cid.startswith("ratelimit.")}
    assert limiter and all(c["outcome"] == "passed" for c in limiter.values()), \
        {cid: (c["outcome"], c["message"]) for cid, c in limiter.items()}
    # The script runs (EVALSHA) on the route the check used, and the evidence says which route that was.
    assert "EVALSHA" in checks["ratelimit.lua"]["message"] or "EVAL" in checks["ratelimit.lua"]["message"]
    route = checks["ratelimit.lua"]["evidence"]["route"]
    assert route.startswith("GET /items") and "GET /products is not a route" in route


def test_missing_health_route_is_one_failure_and_graceful_skips_for_it(tmp_path):
    root = _variant(tmp_path, ('@app.get("/health")', '@app.get("/status")'))
    result = grade(root, GradeOptions(env="current", redis="local", only=("health.*", "app.*")))
    checks = _checks(result)
    ping, graceful = checks["health.redis_ping"], checks["health.graceful"]
    assert ping["outcome"] == "failed", ping
    assert ping["message"].startswith("GET /health is not a route; the app has: ") and "GET /status" in ping["message"]
    assert graceful["outcome"] == "skipped" and "GET /health is not a route" in graceful["message"], graceful


def _openapi(*routes: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, operation in routes:
        paths.setdefault(path, {})[method] = operation
    return {"openapi": "3.1.0", "paths": paths}


def test_limited_route_keeps_products_when_declared_or_when_no_schema():
    assert limited_route({}).path == "/products"
    assert limited_route(_openapi(("get", "/products", {}), ("get", "/", {}))).path == "/products"
    assert limited_route(_openapi(("get", "/products", {}))).note is None


def test_limited_route_picks_a_plain_get_route_health_last():
    openapi = _openapi(("get", "/health", {}), ("get", "/items/{item_id}", {}), ("post", "/items", {}),
                       ("get", "/search", {"parameters": [{"name": "q", "in": "query", "required": True}]}),
                       ("get", "/", {}))
    route = limited_route(openapi)
    assert route.path == "/"
    assert route.note is not None and route.note.startswith("GET / (GET /products is not a route")
    assert limited_route(_openapi(("get", "/health", {}), ("post", "/score", {}))).path == "/health"


def test_limited_route_without_any_plain_get_route_says_the_route_is_missing():
    route = limited_route(_openapi(("post", "/score", {}), ("get", "/items/{item_id}", {})))
    assert route.path is None
    assert route.absent == "GET /products is not a route; the app has: POST /score, GET /items/{item_id}"


def test_a_script_whose_keys_name_no_client_is_still_the_limiters(tmp_path):
    # The counter is a hash under a hashed key: neither the key nor the script's arguments name the client, and
    # nothing outside the script does either - the script every request runs is the limiter.
    root = _variant(tmp_path,
                    ("local count = redis.call('INCR', KEYS[1])", "local count = redis.call('HINCRBY', KEYS[1], 'n', 1)"),
                    ('key = f"rate:ip:{ip}"', 'key = "rl:" + __import__("hashlib").sha1(ip.encode()).hexdigest()'))
    result = grade(root, GradeOptions(env="current", redis="local", only=("ratelimit.lua", "ratelimit.threshold",
                                                                           "app.*")))
    checks = _checks(result)
    assert checks["ratelimit.threshold"]["outcome"] == "passed", checks["ratelimit.threshold"]["message"]
    assert checks["ratelimit.lua"]["outcome"] == "passed", checks["ratelimit.lua"]["message"]
    assert "EVALSHA" in checks["ratelimit.lua"]["message"]
