"""Benchmark: grade the reference submission on the local runtime and print the wall time of each stage.

    python bench/stages.py [--runs 3] [--env isolated|current] [--only 'cache.*']

The first run warms the environment cache (isolated venv); the figures reported are from the warm runs.
Speed is measured here, never asserted in the tests.
"""

from __future__ import annotations

import argparse
import statistics
import time

from grader.resources import reference_submission
from grader.runner import GradeOptions, grade

STAGES = ("workspace", "static", "environment", "redis", "app_start", "checks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--env", default="isolated", choices=("isolated", "current"))
    parser.add_argument("--redis", default="local", choices=("local", "docker", "auto"))
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args()
    options = GradeOptions(env=args.env, redis=args.redis, only=tuple(args.only))

    print(f"warm-up run ({args.env} environment) ...")
    grade(reference_submission(), options)
    rows = []
    for run in range(1, args.runs + 1):
        started = time.monotonic()
        result = grade(reference_submission(), options)
        total = time.monotonic() - started
        by_level = {"basic": 0.0, "advanced": 0.0}
        for check in result["checks"]:
            by_level[check["level"]] += check["duration_s"]
        rows.append({**result["timings_s"], "total": total, **{f"{k} checks": v for k, v in by_level.items()}})
        slowest = sorted(result["checks"], key=lambda c: -c["duration_s"])[:4]
        print(f"run {run}: grade {result['grade']} score {result['score']} in {total:.2f} s; slowest: "
              + ", ".join(f"{c['id']} {c['duration_s']:.1f} s" for c in slowest))
    print(f"\nmedian of {args.runs} warm runs (seconds):")
    for stage in (*STAGES, "total", "basic checks", "advanced checks"):
        values = [row.get(stage, 0.0) for row in rows]
        print(f"  {stage:16} {statistics.median(values):7.2f}")
    checks = statistics.median(row.get("checks", 0.0) for row in rows)
    total = statistics.median(row["total"] for row in rows)
    print(f"\nchecks/total ratio: {checks / total:.2f}")


if __name__ == "__main__":
    main()
