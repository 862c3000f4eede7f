"""Real gradings of fixture submissions draw what their result documents say: each figure agrees with its check's
message and evidence, and shows the defect the fixture carries (a race's extra requests served, a stampede's
writes, one round trip per command, a staircase of requests, a key without TTL)."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from typing import Any

import pytest
from conftest import SUBMISSIONS
from jsonschema import Draft202012Validator

from grader.runner import GradeOptions, grade
from grader.schemas import result_schema

pytestmark = pytest.mark.slow
RESULT_SCHEMA = Draft202012Validator(result_schema())
FIGURED = ("ratelimit.atomic_under_load", "ratelimit.window", "cache.ttl", "cache.refill_after_expiry",
           "cache.stampede", "leaderboard.pipeline", "async.event_loop")


@cache
def graded(name: str, only: tuple[str, ...]) -> dict[str, Any]:
    """The result document of `name` graded with only the `only` checks, as --json writes it (schema-checked)."""
    result = json.loads(json.dumps(grade(SUBMISSIONS / name, GradeOptions(env="current", redis="local",
                                                                         start_timeout=8, only=only))))
    invalid = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in RESULT_SCHEMA.iter_errors(result)]
    assert not invalid, invalid
    assert result["status"] == "graded", result["error"]
    return result


def record(name: str, check_id: str, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    found = next(c for c in graded(name, only or (check_id,))["checks"] if c["id"] == check_id)
    assert found["figure"] is not None, f"{name} {check_id}: no figure ({found['outcome']}: {found['message']})"
    return found


def number_before(text: str, words: str) -> int:
    """The number just before `words` in `text` ("14 served" -> 14)."""
    match = re.search(rf"(\d+) {words}", text)
    assert match, f"no '<n> {words}' in {text!r}"
    return int(match.group(1))


def events(figure: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in figure["events"] if e["event"] == kind]


def test_figures_are_null_where_a_check_has_none(no_leftovers):
    result = graded("reference", FIGURED)
    assert all(c["figure"] is None for c in result["checks"] if c["id"] not in FIGURED)
    assert all(c["figure"] is not None for c in result["checks"] if c["id"] in FIGURED), \
        [(c["id"], c["outcome"], c["message"]) for c in result["checks"] if c["id"] in FIGURED and not c["figure"]]


def test_a_racing_limiter_draws_more_served_than_one_after_another(no_leftovers):
    check = record("ratelimit-get-set", "ratelimit.atomic_under_load")
    figure = check["figure"]
    assert check["outcome"] == "failed" and figure["kind"] == "race"
    served = sum(1 for r in figure["requests"] if r["status"] == 200)
    assert served == figure["served"] == number_before(check["message"], "served") == check["evidence"]["statuses"]["200"]
    assert figure["expected_served"] == number_before(check["evidence"]["sequential"], "served")
    assert served > figure["expected_served"]
    assert figure["latency_injected_ms"] == check["evidence"]["latency_injected_s"] * 1000
    gets = Counter(c["reply"] for c in figure["commands"] if c["name"] == "GET")
    assert gets and max(gets.values()) >= 2, gets  # several GETs read the same count
    assert re.search(r"; \d+ GETs read the same count before the next write", figure["caption"]), figure["caption"]


def test_an_atomic_limiter_draws_its_scripts_one_after_another(no_leftovers):
    check = record("reference", "ratelimit.atomic_under_load", FIGURED)
    figure = check["figure"]
    assert check["outcome"] == "passed" and figure["kind"] == "race"
    assert figure["served"] == figure["expected_served"] == sum(1 for r in figure["requests"] if r["status"] == 200)
    assert len(figure["requests"]) == 50 and sorted(r["lane"] for r in figure["requests"]) == list(range(50))
    assert figure["commands"] and {c["name"] for c in figure["commands"]} <= {"EVAL", "EVALSHA"}
    assert all(c["end_ms"] is not None and c["end_ms"] >= c["at_ms"] for c in figure["commands"])


def test_stampede_draws_the_writes_of_every_expiry(no_leftovers):
    check = record("stampede-unprotected", "cache.stampede")
    figure = check["figure"]
    assert check["outcome"] == "failed" and figure["kind"] == "stampede"
    assert len(figure["expiries"]) == len(check["evidence"]["expiries"])
    for drawn, summary in zip(figure["expiries"], check["evidence"]["expiries"]):
        assert summary.endswith(drawn["verdict"])
        assert f"{drawn['writes']} writes ({drawn['early_writes']} before the expiry)" in summary
        assert f"{drawn['misses']} reads found the key missing, {drawn['requests']} requests" in summary
        assert len(drawn["write_ms"]) == drawn["writes"] and len(drawn["miss_ms"]) == drawn["misses"]
    assert any(e["writes"] > figure["max_writes"] and e["verdict"] == "fail" for e in figure["expiries"])


def test_a_protected_cache_draws_about_one_write(no_leftovers):
    figure = record("reference", "cache.stampede", FIGURED)["figure"]
    assert figure["expiries"][-1]["verdict"] == "pass"
    assert figure["expiries"][-1]["writes"] <= figure["max_early_writes"]


def test_a_seed_without_pipeline_draws_one_round_trip_per_command(no_leftovers):
    check = record("seed-no-pipeline", "leaderboard.pipeline")
    figure = check["figure"]
    assert check["outcome"] == "failed" and figure["kind"] == "round_trips" and figure["pipelined"] is False
    assert figure["commands_total"] > 1
    assert len(figure["groups"]) == figure["commands_total"]
    assert all(len(g["commands"]) == 1 for g in figure["groups"])
    assert f"sent {figure['commands_total']} " in check["message"]


def test_a_pipelined_seed_draws_one_round_trip(no_leftovers):
    check = record("reference", "leaderboard.pipeline", FIGURED)
    figure = check["figure"]
    assert check["outcome"] == "passed" and figure["pipelined"] is True
    assert len(figure["groups"]) == 1 and len(figure["groups"][0]["commands"]) == figure["commands_total"] > 1
    assert f"sent {figure['commands_total']} ZADD in 1 round trip(s)" in check["message"]  # the message counts alike


def _agrees_with_runs(check: dict[str, Any]) -> dict[str, Any]:
    figure = check["figure"]
    runs = check["evidence"]["runs"]
    assert figure["kind"] == "event_loop" and len(figure["requests"]) == check["evidence"]["concurrent"]
    assert figure["serialized_round_trips"] == min(r["serialized_round_trips"] for r in runs)
    shown = next(r for r in runs if r["serialized_round_trips"] == figure["serialized_round_trips"])
    # The bars are the run the verdict rests on: they lie within its wall time.
    assert max(r["end_ms"] for r in figure["requests"]) <= shown["concurrent_s"] * 1000 + 1
    assert figure["latency_injected_ms"] == check["evidence"]["latency_s"] * 1000
    return figure


def test_a_blocking_client_draws_requests_waiting_for_each_other(no_leftovers):
    check = record("sync-client", "async.event_loop")
    figure = _agrees_with_runs(check)
    assert check["outcome"] == "failed"
    latency = figure["latency_injected_ms"]
    # Each request waited for the others' blocking Redis calls: the bars span the serialized round trips, and a
    # typical one lasts several injected latencies (the blocking calls interleave, so they may all end together).
    span = max(r["end_ms"] for r in figure["requests"]) - min(r["start_ms"] for r in figure["requests"])
    assert span >= figure["serialized_round_trips"] * latency
    durations = sorted(r["end_ms"] - r["start_ms"] for r in figure["requests"])
    assert durations[len(durations) // 2] >= 3 * latency, durations
    assert figure["serialized_round_trips"] > (figure["max_serialized"] + 3) / 2


def test_a_non_blocking_app_draws_overlapping_requests(no_leftovers):
    check = record("reference", "async.event_loop", FIGURED)
    figure = _agrees_with_runs(check)
    assert check["outcome"] == "passed"
    # Every request was in flight at once, and each waited for its Redis round trip.
    assert max(r["start_ms"] for r in figure["requests"]) < min(r["end_ms"] for r in figure["requests"])
    assert min(r["end_ms"] - r["start_ms"] for r in figure["requests"]) >= figure["latency_injected_ms"]
    assert figure["serialized_round_trips"] < (figure["max_serialized"] + 3) / 2


def test_a_cache_without_ttl_draws_ttl_minus_one(no_leftovers):
    only = ("cache.ttl", "cache.refill_after_expiry")
    ttl = record("cache-no-ttl", "cache.ttl", only)
    figure = ttl["figure"]
    assert ttl["outcome"] == "failed" and figure["kind"] == "countdown" and figure["key"] == ttl["evidence"]["key"]
    assert [e["ttl_s"] for e in events(figure, "ttl")] == [-1]
    assert events(figure, "written")[0]["at_s"] == 0.0 and figure["ttl_limit_s"] == 60
    refill = record("cache-no-ttl", "cache.refill_after_expiry", only)["figure"]
    assert refill["events"][0]["event"] == "written"
    assert events(refill, "expired") and events(refill, "refilled")
    assert events(refill, "expired")[0]["at_s"] < events(refill, "refilled")[0]["at_s"]
    assert [e["ttl_s"] for e in events(refill, "ttl")] == [-1]


def test_a_cache_with_ttl_draws_its_countdown(no_leftovers):
    check = record("reference", "cache.ttl", FIGURED)
    [seen] = events(check["figure"], "ttl")
    assert seen["ttl_s"] == check["evidence"]["pttl_ms"] / 1000 and 55 <= seen["ttl_s"] <= 60
    refill = record("reference", "cache.refill_after_expiry", FIGURED)["figure"]
    assert 55 <= events(refill, "ttl")[0]["ttl_s"] <= 60 and events(refill, "refilled")


def test_the_window_draws_the_counter_served_blocked_expired_and_served_again(no_leftovers):
    check = record("reference", "ratelimit.window", FIGURED)
    figure = check["figure"]
    assert check["outcome"] == "passed" and figure["kind"] == "countdown" and figure["ttl_limit_s"] == 60
    statuses = [e["status"] for e in events(figure, "request")]
    blocked_after = number_before(check["message"], "requests\\)")
    assert statuses[:blocked_after] == [200] * blocked_after and statuses[blocked_after] == 429
    assert statuses[-1] == 200 and len(statuses) == blocked_after + 2
    [expired] = events(figure, "expired")
    assert expired["at_s"] < events(figure, "request")[-1]["at_s"]
    assert [e["ttl_s"] for e in events(figure, "ttl")] == [max(check["evidence"]["counter_ttls"].values())]


def test_a_counter_without_ttl_draws_ttl_minus_one(no_leftovers):
    check = record("ratelimit-no-expire", "ratelimit.window")
    assert check["outcome"] == "failed"
    assert [e["ttl_s"] for e in events(check["figure"], "ttl")] == [-1]
    assert "no TTL (-1)" in check["figure"]["caption"]
