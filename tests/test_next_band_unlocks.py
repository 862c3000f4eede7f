"""The next-grade advice counts what a fix unlocks: the checks skipped behind a failed one."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from grader.reporters._common import blocked_by, next_band_advice, plan_next_band, read_result

RESULTS = Path(__file__).resolve().parent / "results"


def _behind_uses_redis_url() -> dict:
    doc = json.loads((RESULTS / "graded.json").read_text())
    doc = copy.deepcopy(doc)
    skipped = {"health.redis_ping": "needs app.uses_redis_url, which failed",
               "cache.populates": "needs app.uses_redis_url, which failed",
               "cache.ttl": "needs cache.populates, which skipped",
               "cache.serves_from_cache": "needs cache.populates, which skipped"}
    for check in doc["checks"]:
        if check["id"] == "app.uses_redis_url":
            check["outcome"], check["points"], check["message"] = "failed", 0, "no Redis traffic"
        elif check["id"] in skipped:
            check["outcome"], check["points"], check["message"] = "skipped", 0, skipped[check["id"]]
    applicable = [c for c in doc["checks"] if c["applicable"]]
    doc["points"] = sum(c["points"] for c in applicable)
    doc["score"] = round(doc["points"] / doc["max_points"] * doc["max_score"], 2)
    doc["grade"] = next(b for b, t in sorted(doc["grade_bands"].items(), key=lambda kv: -kv[1]) if doc["score"] >= t)
    return doc


def test_skipped_checks_are_counted_for_the_check_they_wait_on():
    report = read_result(_behind_uses_redis_url())
    behind = blocked_by(report)
    assert sorted(c.id for c in behind["app.uses_redis_url"]) == [
        "cache.populates", "cache.serves_from_cache", "cache.ttl", "health.redis_ping"]
    plan = plan_next_band(report)
    assert plan is not None and plan.fixes[0][0].id == "app.uses_redis_url"
    own = next(c for c in report.checks if c.id == "app.uses_redis_url").max_points
    unlocked = sum(c.max_points for c in behind["app.uses_redis_url"])
    scale = report.max_score / report.max_points
    assert abs(plan.fixes[0][1] - (own + unlocked) * scale) < 1e-6
    assert "app.uses_redis_url (+" in next_band_advice(report)
    assert "with the 4 checks it unlocks" in next_band_advice(report)
