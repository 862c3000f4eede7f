"""Many gradings at once do not change a verdict: three `grader batch --jobs 4` runs over fixtures with timing
checks (a stampede, a rate-limit window, a blocking client) give the same outcome for every check of every
submission. On 2 cores --jobs 4 runs more gradings than cores; the timing phase of each takes the machine-wide
lock (grader/machinelock.py), with the other gradings' ordinary checks going on beside it, which is what this test
holds to.

The whole fixture class three times takes well over ten minutes on a 2-core machine, so the class here is a
representative subset: every fixture whose grade rests on a timing check, and three without.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SUBMISSIONS

CLASS = ("reference", "stampede-unprotected", "stampede-xfetch", "ratelimit-get-set", "sync-client",
         "cache-no-ttl", "ratelimit-sliding-window", "health-no-ping")
RUNS = 3


def _verdicts(out: Path) -> dict[tuple[str, str], str]:
    found = {}
    for path in sorted(out.glob("*/result.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        found[(path.parent.name, "grade")] = f"{doc['status']} {doc['grade']}"
        for check in doc["checks"]:
            found[(path.parent.name, check["id"])] = check["outcome"]
    return found


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_three_batches_at_four_jobs_agree(tmp_path: Path) -> None:
    subs = tmp_path / "class"
    for name in CLASS:
        shutil.copytree(SUBMISSIONS / name, subs / name)
    seen = []
    for run in range(RUNS):
        out = tmp_path / f"out{run}"
        argv = [sys.executable, "-m", "grader", "batch", "--runtime", "local", str(subs), "--out", str(out), "--jobs", "4",
                "--env", "current", "--redis", "local"]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900,
                              check=False)
        assert done.returncode in (0, 3), done.stdout + done.stderr
        seen.append(_verdicts(out))
    assert len(seen[0]) > len(CLASS)
    for other in seen[1:]:
        differ = {k: (seen[0].get(k), other.get(k)) for k in seen[0].keys() | other.keys()
                  if seen[0].get(k) != other.get(k)}
        assert not differ, differ
