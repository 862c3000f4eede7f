"""Benchmark: grade the reference submission and print the wall time of each stage.

    python bench/stages.py [--runs 3] [--env isolated|current] [--only 'cache.*'] [--runtime local|docker|both]

The first run of each runtime warms its environment cache (the isolated venv, or the container venv); the
figures reported are from the warm runs. `--runtime both` alternates the two runtimes run by run (so a busy
spell of the machine weighs on both alike), prints their medians side by side and the docker/local ratio of the
totals. `--full-only` leaves out the second grading of each run (basic checks only), halving the time.
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
TOTALS = ("total", "total, basic only", "basic checks", "advanced checks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--env", default="isolated", choices=("isolated", "current"))
    parser.add_argument("--redis", default="local", choices=("local", "docker", "auto"))
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--runtime", default="local", choices=("local", "docker", "both"))
    parser.add_argument("--app-image", default=DEFAULT_APP_IMAGE)
    parser.add_argument("--full-only", action="store_true", help="skip the basic-only grading of each run")
    args = parser.parse_args()
    runtimes = ("local", "docker") if args.runtime == "both" else (args.runtime,)
    options = {
        name: GradeOptions(env=args.env, redis=args.redis, only=tuple(args.only), runtime=name,
                           app_image=args.app_image)
        for name in runtimes
    }  # fmt: skip
    for name in runtimes:
        print(f"warm-up run ({name} runtime, {args.env} environment) ...")
        grade(reference_submission(), options[name])
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in runtimes}
    for run in range(1, args.runs + 1):
        for name in runtimes:
            rows[name].append(_timed_run(name, run, options[name], not args.full_only))
    medians = {name: _medians(rows[name]) for name in runtimes}
    print(f"\nmedian of {args.runs} warm runs (seconds):")
    print(f"  {'':18} " + " ".join(f"{name:>8}" for name in runtimes))
    for stage in (*STAGES, *TOTALS):
        if stage in medians[runtimes[0]]:
            print(f"  {stage:18} " + " ".join(f"{medians[name][stage]:8.2f}" for name in runtimes))
    for name in runtimes:
        print(f"\n{name}:")
        if not args.full_only:
            # Isolated checks (the submission's tests, ruff) run beside the others, so the advanced checks' own
            # times add up to more than the wall time they cost: what they add is the difference of the totals.
            added = statistics.median(row["total"] - row["total, basic only"] for row in rows[name])
            print(f"  the advanced set adds {added:.2f} s to grading the reference")
        print(f"  checks/total ratio: {medians[name]['checks'] / medians[name]['total']:.2f}")
    if len(runtimes) == 2:
        ratios = [d["total"] / loc["total"] for loc, d in zip(rows["local"], rows["docker"], strict=True)]
        print(f"\ndocker/local, total: {medians['docker']['total'] / medians['local']['total']:.2f} "
              f"(ratio of the medians); run by run: " + ", ".join(f"{r:.2f}" for r in ratios))


def _timed_run(name: str, run: int, options: GradeOptions, basic_too: bool) -> dict[str, float]:
    started = time.monotonic()
    result = grade(reference_submission(), options)
    total = time.monotonic() - started
    row = {**result["timings_s"], "total": total}
    by_level = {"basic": 0.0, "advanced": 0.0}
    for check in result["checks"]:
        by_level[check["level"]] += check["duration_s"]
    row.update({f"{level} checks": seconds for level, seconds in by_level.items()})
    basic_text = ""
    if basic_too:
        basic = tuple(check.id for check in load_checks().values() if check.level == "basic")
        basic_only = replace(options, only=tuple(c for c in basic if selected(c, options.only)) or ("none",))
        started = time.monotonic()
        grade(reference_submission(), basic_only)
        row["total, basic only"] = time.monotonic() - started
        basic_text = f" (basic only {row['total, basic only']:.2f} s)"
    slowest = sorted(result["checks"], key=lambda c: -c["duration_s"])[:4]
    print(f"{name} run {run}: grade {result['grade']} score {result['score']} in {total:.2f} s{basic_text}; "
          "slowest: " + ", ".join(f"{c['id']} {c['duration_s']:.1f} s" for c in slowest))
    return row


def _medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(row.get(key, 0.0) for row in rows) for key in rows[0]}


if __name__ == "__main__":
    main()
