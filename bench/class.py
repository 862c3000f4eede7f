"""Benchmark: `grader batch` over the whole fixture class at --jobs 1 and at --jobs 4; prints each run's wall time,
the ratio, the processor time each run used (the floor of any --jobs: processor time / cores), and whether the
verdicts (the outcome of every check of every submission) are identical.

    python bench/class.py [--jobs 1 --jobs 4] [--fixture reference ...] [--env current] [--redis local] [--keep DIR]
                          [--split]

The fixtures are copied into a temporary class folder first. With --env isolated (the default, as `grader batch`
grades) their environments are built or found in the cache before anything is timed: the figures are those of a
warm environment cache. Each run starts with --fresh, so nothing is kept from the one before. Speed is measured
here, never asserted in the tests.

--split also says whose processor time it was: the submission's own processes (its app, its tests, its seed
script: whatever the grader's sandbox runs), Redis, or the grader. It samples /proc every 0.1 s while a batch
runs, which costs some processor time itself, so take the headline figures from a run without it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from grader.sandbox import MARKER_VAR

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "submissions"


def verdicts(out: Path) -> dict[tuple[str, str], str]:
    """(submission, check id) -> outcome, plus (submission, "status") -> graded/error, over a results folder."""
    found: dict[tuple[str, str], str] = {}
    for path in sorted(out.glob("*/result.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        name = path.parent.name
        found[(name, "status")] = doc.get("status", "?")
        for check in doc.get("checks") or []:
            found[(name, check["id"])] = check["outcome"]
    return found


def print_per_submission(out: Path) -> None:
    """Each submission's own grading time, from its result, graded one at a time: the mean and the slowest; and
    the mean of each stage (timings_s: workspace, environment, redis, app_start, checks) over the gradings that
    reached it."""
    took: dict[str, float] = {}
    stages: dict[str, list[float]] = {}
    for path in sorted(out.glob("*/result.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        took[path.parent.name] = float(doc.get("duration_s") or 0.0)
        for stage, seconds in (doc.get("timings_s") or {}).items():
            stages.setdefault(stage, []).append(float(seconds))
    if not took:
        return
    slowest = sorted(took.items(), key=lambda item: -item[1])
    print(f"  per submission: mean {sum(took.values()) / len(took):.1f} s, slowest {slowest[0][1]:.1f} s "
          f"({slowest[0][0]})")
    print("  slowest five: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest[:5]))
    print("  stages, mean over the submissions that reached them: " + ", ".join(
        f"{stage} {sum(seconds) / len(seconds):.2f} s" for stage, seconds in stages.items()))


class ProcessorSplit:
    """Processor time of a batch's processes by kind, sampled from /proc: "submission" (a process of the grader's
    sandbox: its marker is in the environment, which every process it starts inherits), "redis" (redis-server)
    and "grader" (everything else the batch started). A process that lives less than one interval is not seen;
    the caller reports what the batch used beyond the sum as unsampled."""

    INTERVAL_S = 0.1

    def __init__(self, batch_pid: int) -> None:
        self.batch_pid = batch_pid
        self._used: dict[tuple[int, int], float] = {}  # (pid, start) -> its own user + system seconds so far
        self._kind: dict[tuple[int, int], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._thread.start()

    def stop(self) -> Counter[str]:
        self._stop.set()
        self._thread.join()
        by_kind: Counter[str] = Counter()
        for key, seconds in self._used.items():
            by_kind[self._kind[key]] += seconds
        return by_kind

    def _sample_until_stopped(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(self.INTERVAL_S):
            parents: dict[int, int] = {}
            sampled: dict[tuple[int, int], tuple[float, str]] = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    text = Path(f"/proc/{entry}/stat").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid ... utime stime
                pid = int(entry)
                parents[pid] = int(fields[1])
                sampled[(pid, int(fields[19]))] = (int(fields[11]) + int(fields[12])) / tick, text
            for (pid, start), (seconds, text) in sampled.items():
                if self._descends(pid, parents):
                    self._used[(pid, start)] = seconds  # its own time only: a parent's counts its children's too
                    self._kind.setdefault((pid, start), self._kind_of(pid, text))

    def _descends(self, pid: int, parents: dict[int, int]) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == self.batch_pid:
                return True
            if pid <= 1:
                return False
        return False

    @staticmethod
    def _kind_of(pid: int, stat_text: str) -> str:
        if "(redis-server)" in stat_text:
            return "redis"
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return "grader"
        return "submission" if f"{MARKER_VAR}=".encode() in environment else "grader"


def run_batch(class_dir: Path, out: Path, jobs: int, args: argparse.Namespace) -> tuple[float, float, Counter[str]]:
    """The batch's wall time, the processor time it and everything it started used (user + system), and with
    --split whose it was (ProcessorSplit; empty without)."""
    argv = [sys.executable, "-m", "grader", "batch", "--runtime", "local", str(class_dir), "--out", str(out), "--jobs", str(jobs),
            "--env", args.env, "--redis", args.redis, "--fresh"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    # As installed: the grader's modules compiled once, not again by every `grader check` of the batch.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    batch = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    split = ProcessorSplit(batch.pid) if args.split else None
    batch.wait()
    took = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, cpu, split.stop() if split is not None else Counter()


def warm_environments(class_dir: Path) -> None:
    """Build (or find in the cache) every submission's environment, untimed, as a batch on this machine would."""
    sys.path.insert(0, str(ROOT))
    from grader.environment import prepare_environment

    started = time.monotonic()
    for submission in sorted(class_dir.iterdir()):
        try:
            prepare_environment(submission, "isolated")
        except Exception as exc:  # noqa: BLE001 - the batch reports it as that submission's error
            print(f"  {submission.name}: no environment ({exc})")
    print(f"environments ready in {time.monotonic() - started:.1f} s (not counted below)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, action="append", help="each value is one run (default: 1 and 4)")
    parser.add_argument("--fixture", action="append", help="grade only these fixtures (default: all)")
    parser.add_argument("--env", default="isolated", choices=("isolated", "current"))
    parser.add_argument("--redis", default="local", choices=("local", "docker", "auto"))
    parser.add_argument("--keep", type=Path, help="copy each run's results here (out-jobsN), to read per-check times")
    parser.add_argument("--split", action="store_true", help="also the processor time by whose process it was")
    args = parser.parse_args()
    jobs = args.jobs or [1, 4]
    names = args.fixture or sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
    with tempfile.TemporaryDirectory(prefix="grader-bench-class-") as tmp:
        class_dir = Path(tmp) / "class"
        for name in names:
            shutil.copytree(FIXTURES / name, class_dir / name, symlinks=True)
        print(f"{len(names)} submissions, --env {args.env} --redis {args.redis}, {os.cpu_count()} cores")
        if args.env == "isolated":
            warm_environments(class_dir)
        times: dict[int, float] = {}
        seen: dict[int, dict[tuple[str, str], str]] = {}
        for n in jobs:
            out = Path(tmp) / f"out-jobs{n}"
            times[n], cpu, whose = run_batch(class_dir, out, n, args)
            seen[n] = verdicts(out)
            if args.keep:
                shutil.copytree(out, args.keep / out.name, dirs_exist_ok=True)
            cores = len(os.sched_getaffinity(0))
            print(f"--jobs {n}: {times[n]:.1f} s; processor time {cpu:.0f} s ({cpu / len(names):.1f} s per "
                  f"submission), so no --jobs can take under {cpu / cores:.0f} s on {cores} cores")
            if whose:
                whose["unsampled"] = cpu - sum(whose.values())  # processes shorter than one sampling interval
                print("  whose, per submission: " + ", ".join(
                    f"{kind} {whose[kind] / len(names):.1f} s" for kind in ("submission", "grader", "redis", "unsampled")))
            if n == 1:
                print_per_submission(out)
        first = jobs[0]
        for n in jobs[1:]:
            print(f"ratio --jobs {first} / --jobs {n}: {times[first] / times[n]:.2f}x")
            differ = sorted(k for k in seen[first].keys() | seen[n].keys() if seen[first].get(k) != seen[n].get(k))
            print(f"verdicts identical (--jobs {first} vs --jobs {n}): {'yes' if not differ else 'NO'}")
            for name, check in differ:
                print(f"  {name} {check}: {seen[first].get((name, check))} vs {seen[n].get((name, check))}")


if __name__ == "__main__":
    main()
