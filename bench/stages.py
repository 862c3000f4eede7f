"""Benchmark: grade the reference submission on the local runtime and print the wall time of each stage.

    python bench/stages.py [--runs 3] [--env isolated|current] [--only 'cache.*']

The first run warms the environment cache (isolated venv); the figures reported are from the warm runs.
Speed is measured here, never asserted in the tests.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from grader.checking import load_checks
from grader.checkrun import selected
from grader.resources import reference_submission
from grader.runner import GradeOptions, grade
from grader.runtime import DEFAULT_APP_IMAGE

STAGES = ("workspace", "static", "environment", "redis", "app_start", "checks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--env", default="isolated", choices=("isolated", "current"))
    parser.add_argument("--redis", default="local", choices=("local", "docker", "auto"))
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--runtime", default="local", choices=("local", "docker"))
    parser.add_argument("--app-image", default=DEFAULT_APP_IMAGE)
    args = parser.parse_args()
    options = GradeOptions(env=args.env, redis=args.redis, only=tuple(args.only), runtime=args.runtime,
                           app_image=args.app_image)
    basic = tuple(check.id for check in load_checks().values() if check.level == "basic")
    basic_only = replace(options, only=tuple(c for c in basic if selected(c, options.only)) or ("none",))

    print(f"warm-up run ({args.env} environment) ...")
    grade(reference_submission(), options)
    rows = []
    for run in range(1, args.runs + 1):
        started = time.monotonic()
        result = grade(reference_submission(), options)
        total = time.monotonic() - started
        started = time.monotonic()
        grade(reference_submission(), basic_only)
        basic_total = time.monotonic() - started
        by_level = {"basic": 0.0, "advanced": 0.0}
        for check in result["checks"]:
            by_level[check["level"]] += check["duration_s"]
        rows.append({**result["timings_s"], "total": total, "total, basic only": basic_total,
                     **{f"{k} checks": v for k, v in by_level.items()}})
        slowest = sorted(result["checks"], key=lambda c: -c["duration_s"])[:4]
        print(f"run {run}: grade {result['grade']} score {result['score']} in {total:.2f} s "
              f"(basic only {basic_total:.2f} s); slowest: "
              + ", ".join(f"{c['id']} {c['duration_s']:.1f} s" for c in slowest))
    print(f"\nmedian of {args.runs} warm runs (seconds):")
    for stage in (*STAGES, "total", "total, basic only", "basic checks", "advanced checks"):
        values = [row.get(stage, 0.0) for row in rows]
        print(f"  {stage:18} {statistics.median(values):7.2f}")
    # Isolated checks (the submission's tests, ruff) run beside the others, so the advanced checks' own times add
    # up to more than the wall time they cost: what they add is the difference of the two totals.
    added = statistics.median(row["total"] - row["total, basic only"] for row in rows)
    print(f"\nthe advanced set adds {added:.2f} s to grading the reference")
    checks = statistics.median(row.get("checks", 0.0) for row in rows)
    total = statistics.median(row["total"] for row in rows)
    print(f"checks/total ratio: {checks / total:.2f}")


if __name__ == "__main__":
    main()
