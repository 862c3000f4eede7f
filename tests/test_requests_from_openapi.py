"""Requests built from what an app's /openapi.json declares, missing routes named, binary values shown, and
the pure helpers of the checks that use them (no app needed: these read schemas and strings only)."""

from __future__ import annotations

from pathlib import Path

from checks.app import parameterless_gets
from checks.cache.invalidation import mismatch
from checks.leaderboard import score_fields, top_entries
from grader.app import diagnose_startup_log
from grader.checksupport import missing_route, request_parts, shown_bytes
from grader.proxy import Command

QUERY_SCORE = {
    "paths": {
        "/score": {"post": {"parameters": [
            {"name": "player", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "points", "in": "query", "required": True, "schema": {"type": "number"}},
        ]}},
        "/products/": {"get": {}},
        "/items/{item_id}": {"get": {}},
        "/search": {"get": {"parameters": [{"name": "q", "in": "query", "required": True}]}},
        "/": {"get": {}},
        "/docs": {"get": {}},
    }
}

FORM_SCORE = {
    "paths": {"/score": {"post": {"requestBody": {"content": {"application/x-www-form-urlencoded": {
        "schema": {"$ref": "#/components/schemas/Body"}}}}}}},
    "components": {"schemas": {"Body": {"properties": {"name": {"type": "string"}, "value": {"type": "integer"}},
                                        "required": ["name", "value"]}}},
}


def test_query_parameters_are_sent_as_query_parameters():
    fields = score_fields(QUERY_SCORE)
    assert (fields.user, fields.score) == ("player", "points")
    assert fields.request({"player": "alice", "points": 10}) == {"params": {"player": "alice", "points": 10}}
    assert fields.shown({"player": "alice", "points": 10}) == "?player=alice&points=10"


def test_form_fields_are_sent_as_a_form():
    fields = score_fields(FORM_SCORE)
    assert (fields.user, fields.score) == ("name", "value")
    assert fields.request({"name": "a", "value": 1}) == {"data": {"name": "a", "value": 1}}


def test_without_a_schema_the_body_is_json():
    fields = score_fields({})
    assert fields.request({fields.user: "a", fields.score: 1}) == {"json": {"user": "a", "score": 1}}
    assert request_parts([], {"x": 1}) == {"json": {"x": 1}}


def test_a_missing_route_is_named_with_the_routes_the_app_has():
    message = missing_route(QUERY_SCORE, "get", "/top")
    assert message is not None and message.startswith("GET /top is not a route; the app has: POST /score")
    assert missing_route(QUERY_SCORE, "get", "/products") is None  # declared as /products/ (a router's "/")
    assert missing_route({}, "get", "/top") is None  # no schema: nothing can be said


def test_parameterless_get_routes_come_after_the_contract_ones():
    routes = parameterless_gets(QUERY_SCORE)
    assert routes[:3] == ["/health", "/products", "/top"]
    assert "/" in routes and "/products/" in routes
    assert "/items/{item_id}" not in routes and "/search" not in routes and "/docs" not in routes


def test_players_that_are_numbers_are_sent_and_read_as_numbers():
    """POST /score declaring `user_id: int` and `score`: each player is a unique number, and GET /top's
    {"user_id": 7, "score": 90} reads as player "7" (it used to send a name, answered 422: 10 points lost)."""
    body = {"type": "object", "required": ["user_id", "score"],
            "properties": {"user_id": {"type": "integer"}, "score": {"type": "number"}}}
    openapi = {"paths": {"/score": {"post": {"requestBody": {"content": {"application/json": {"schema": body}}}}}}}
    fields = score_fields(openapi)
    assert (fields.user, fields.score, fields.numeric_user) == ("user_id", "score", True)
    first, second = fields.player("ann"), fields.player("bob")
    assert isinstance(first, int) and first != second
    assert fields.request({fields.user: first, fields.score: 42}) == {"json": {"user_id": first, "score": 42}}
    assert top_entries([{"rank": 1, "user_id": 7, "score": 90.0}, {"rank": 2, "user_id": 3, "score": 50}]) == [
        ("7", 90.0), ("3", 50.0)]
    named = {"type": "object", "properties": {"user": {"type": "string"}, "user_id": {"type": "integer"},
                                               "score": {"type": "number"}}}
    openapi["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"] = named
    assert (score_fields(openapi).user, score_fields(openapi).numeric_user) == ("user", False)  # a name wins


def test_top_in_an_object_with_player_and_points():
    body = {"top": [{"player": "dan", "points": 70.0}, {"player": "bob", "points": 50}]}
    assert top_entries(body) == [("dan", 70.0), ("bob", 50.0)]


def test_binary_values_are_shown_not_decoded():
    import pickle

    assert shown_bytes(pickle.dumps([{"name": "x"}])).startswith("a pickle of ")
    assert shown_bytes(b'[{"name": "x"}]') == '[{"name": "x"}]'


def _command(name: str, *args: str) -> Command:
    return Command(seq=1, conn=1, time=0.0, name=name, args=args, pipelined=False, in_multi=False, dropped=False)


def test_invalidation_names_the_key_the_write_deleted():
    text = mismatch([_command("DEL", "products")], "products:all")
    assert "DEL products" in text and "'products:all'" in text
    assert "sent Redis nothing" in mismatch([], "products:all")
    assert "deleted no key" in mismatch([_command("SET", "x", "1")], "products:all")


def test_aioredis_on_python_311_is_explained():
    log = ('  File "/venv/lib/python3.11/site-packages/aioredis/exceptions.py", line 14, in <module>\n'
           "    class TimeoutError(asyncio.TimeoutError, builtins.TimeoutError, RedisError):\n"
           "TypeError: duplicate base class TimeoutError\n")
    cause = diagnose_startup_log(log, "app.main:app", Path("/tmp/app"))
    assert cause is not None and "redis.asyncio" in cause and "aioredis" in cause


def test_static_facts_locate_routes_and_redis_calls():
    from grader.reporters.junit import code_location
    from grader.static import analyze

    facts = analyze(Path(__file__).resolve().parent.parent / "fixtures" / "submissions" / "reference")
    where = facts.located("GET /top", "zrevrange")
    assert where[0].startswith("backend/app/main.py:") and '@app.get("/top")' in where[0]
    assert any("zrevrange" in line for line in where)
    assert code_location({"where": where}) == ("backend/app/main.py", int(where[0].split(":")[1]))
    assert not any("test_api.py" in f.file for fs in facts.redis_calls.values() for f in fs)  # httpx, not Redis


def test_connection_errors_are_quoted_from_the_log():
    from checks.app import _connection_error

    log = ("INFO: Started\nredis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. "
           "Connection refused.\nINFO: done\n")
    assert _connection_error(log) == ["Error 111 connecting to localhost:6379. Connection refused."]
    assert _connection_error("all good") == []


def test_load_dotenv_override_is_a_fact(tmp_path):
    from grader.static import analyze

    (tmp_path / "main.py").write_text("from dotenv import load_dotenv\nload_dotenv(override=True)\nload_dotenv()\n")
    facts = analyze(tmp_path)
    assert [(f.file, f.line) for f in facts.dotenv_overrides] == [("main.py", 2)]


def test_product_writes_declared_as_query_parameters_are_sent_so():
    from checks.cache.invalidation import sample_body, write_endpoints

    openapi = {"paths": {"/products/": {"post": {"parameters": [
        {"name": "name", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "price", "in": "query", "required": True, "schema": {"type": "number"}}]}}}}
    [endpoint] = write_endpoints(openapi)
    body = sample_body(endpoint.schema, openapi, "rg-new-2", 3.5)
    assert body == {"name": "rg-new-2", "price": 3.5}
    assert request_parts(endpoint.inputs, body) == {"params": body}


def test_a_delete_route_is_tried_last_on_the_checks_own_product_and_passes_once_it_is_gone():
    """cache.invalidation: DELETE /products/{id} (a defect of its own when it leaves the list stale: the
    cache-delete-stale fixture) deletes the product the check's POST made, and the next listing must not show it."""
    from checks.cache.invalidation import Write, _product_id, write_endpoints
    from grader.probe import Reply

    body = {"content": {"application/json": {"schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}
    by_id = [{"name": "product_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    openapi = {"paths": {
        "/products": {"post": {"requestBody": body}, "delete": {}},  # a DELETE of the whole list: not a product's
        "/products/{product_id}": {"delete": {"parameters": by_id}, "put": {"parameters": by_id, "requestBody": body}},
    }}
    assert [(e.method, e.template) for e in write_endpoints(openapi)] == [
        ("post", "/products"), ("put", "/products/{product_id}"), ("delete", "/products/{product_id}")]
    post, put, delete = write_endpoints(openapi)

    def written(endpoint, token):  # type: ignore[no-untyped-def]
        return Write(endpoint, endpoint.template, {}, Reply("X", "/", "ip", 200, "", 0.0), [], token, 1.5)

    listing = [{"id": 1, "name": "rg-new-put"}, {"id": 4, "name": "rg-new-post"}, {"id": 5, "name": "other"}]
    assert _product_id(listing, delete, [written(post, "rg-new-post"), written(put, "rg-new-put")]) == 4
    assert _product_id(listing, delete, []) == 5  # none of the check's own: the last one
    assert _product_id(listing, put, []) == 1
    gone = Write(delete, "/products/4", {}, Reply("DELETE", "/products/4", "ip", 204, "", 0.0), [], "t", 1.5,
                 removed=4)
    assert gone.shows(Reply("GET", "/products", "ip", 200, '[{"id": 1}, {"id": 5}]', 0.0))
    assert not gone.shows(Reply("GET", "/products", "ip", 200, '[{"id": 1}, {"id": 4}]', 0.0))


def test_a_health_body_that_changes_only_where_healthy_ones_do_says_nothing():
    """health.redis_ping: a 2xx answer while Redis is down must say so; a timestamp that changes on every answer
    is not saying anything (the healthy answer is taken twice to tell what changes anyway)."""
    from checks.health import stable_changes

    up, again = '{"status": "ok", "redis": "up", "at": 1.5}', '{"status": "ok", "redis": "up", "at": 2.5}'
    assert stable_changes(up, again, '{"status": "ok", "redis": "up", "at": 3.5}') == ([], ["at"])
    assert stable_changes(up, again, '{"status": "ok", "redis": "down", "at": 3.5}') == (["redis"], ["at"])
    assert stable_changes(up, again, '{"status": "ok", "redis": "up", "at": 3.5, "error": "refused"}')[0] == ["error"]
    assert stable_changes('{"checks": [{"ok": true}]}', '{"checks": [{"ok": true}]}',
                          '{"checks": [{"ok": false}]}') == (["checks.0.ok"], [])
    assert stable_changes("OK", "OK", "OK") == ([], [])
    assert stable_changes("OK", "OK", "Redis down") == (["(body)"], [])
    assert stable_changes("up since 12:01", "up since 12:02", "up since 12:03") == ([], ["(digits)"])


def test_serves_from_cache_marks_a_product_string_the_app_showed_not_a_wrapper_field():
    """The harness edits one string of the cached value and expects to see it in the next answer: it must be one
    the answer shows (a product's name), not the wrapper's "cached_at"."""
    import json

    from checks.cache.basic import _rewritten

    raw = json.dumps({"cached_at": "2026-11-30T12:00:00+00:00", "items": [{"id": 1, "name": "Vue 3 Basics"}]})
    changed = json.loads(_rewritten(raw.encode(), "TOKEN", {"Vue 3 Basics"}))
    assert changed == {"cached_at": "2026-11-30T12:00:00+00:00", "items": [{"id": 1, "name": "TOKEN"}]}
    assert _rewritten(raw.encode(), "TOKEN", {"not there"}) is None  # the trace decides then


def test_top_as_one_entry_objects_is_read():
    assert top_entries([{"dan": 70.0}, {"bob": 50}, {"cat": 30.0}]) == [("dan", 70.0), ("bob", 50.0), ("cat", 30.0)]


def test_what_counts_as_outside_the_request_path_is_named_whole():
    """A sync client in tests, a seed script or a scripts folder is fine; `latest_scores.py` is neither a test
    nor a seed, so a sync client there is in the request path."""
    from checks.async_client import _in_request_path
    from grader.static import Finding

    def inside(path: str, imported: frozenset[str] | None = None) -> bool:
        return _in_request_path(Finding(path, 1, "redis.Redis()"), imported)

    assert not any(inside(p) for p in ("backend/tests/conftest.py", "test_main.py", "backend/app/seed.py",
                                        "scripts/load.py", "app/seed_data.py", "app/api_test.py", "seed/run.py"))
    in_app = ("backend/app/latest_scores.py", "app/contest.py", "app/routes/fastest_test_x.py", "backend/app/main.py")
    assert all(inside(p) for p in in_app)
    assert all(inside(p, frozenset(in_app)) for p in in_app)  # the app imports them
    # A file the app never imports is outside, whatever it is called (a script that fills the leaderboard).
    assert not inside("backend/populate_leaderboard.py", frozenset(in_app))
    assert not inside("backend/app/seed.py", frozenset({"backend/app/seed.py"}))  # a seed stays outside


def test_a_suite_whose_tests_all_skipped_has_no_passed_in_its_summary():
    from checks.quality import _PASSED, _summary

    assert _summary("..\n5 passed in 0.90s\n") == "5 passed in 0.90s"
    assert _summary("ss\n===== 5 skipped in 0.17s =====") == "5 skipped in 0.17s"
    assert not _PASSED.search(_summary("ss\n5 skipped in 0.17s"))
    assert _PASSED.search(_summary("1 passed, 4 skipped in 0.2s"))
    assert _summary("no summary at all") is None
