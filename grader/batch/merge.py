"""`grader merge`: one results folder, gradebook and overview from the results folders of a sharded batch.

Each shard (`grader batch --shard I/N`) signs its results with the batch key of the machine it ran on. A result
is taken when the merging machine's key verifies it (the shards shared a key: REDIS_GRADER_BATCH_KEY), or, with
`trust_shards`, as it is (shards on machines of their own, such as CI runners, whose outputs reach the merge as
artifacts). Either way the merged copy is signed again with this machine's key, so the merged folder is a
results folder like any other (a later `grader batch --out` on it resumes from it).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import UsageError

from .integrity import signing_key
from .store import GRADED_WITH, LOG, REPORTS, RESULT, make_results_folder, read_stored, write_submission


@dataclass
class MergeSummary:
    merged: list[str] = field(default_factory=list)  # submission names, sorted
    untrusted: list[str] = field(default_factory=list)  # "<shard>/<name>": signature not verified, left out
    notes: list[str] = field(default_factory=list)


def merge(shards: list[Path], out: Path, *, trust_shards: bool = False) -> MergeSummary:
    """Copy every shard's results into `out` and sign them there; a name found in two shards is an error."""
    key = signing_key()
    make_results_folder(out)
    out_resolved = out.resolve()
    summary = MergeSummary()
    seen: dict[str, Path] = {}
    settings_seen: list[dict[str, object]] = []
    for shard in shards:
        if not shard.is_dir():
            raise UsageError(f"'{shard}' is not a results folder")
        if shard.resolve() == out_resolved:
            raise UsageError("--out must be a folder of its own, not one of the shards")
        for result in sorted(shard.glob(f"*/{RESULT}"), key=lambda p: p.parent.name):
            name = result.parent.name
            if name.startswith("."):
                continue
            stored = read_stored(result.parent, key)
            if stored.document is None or (not stored.trusted and not trust_shards):
                summary.untrusted.append(f"{shard.name}/{name}")
                continue
            if name in seen:
                raise UsageError(f"{name} is in two shards ({seen[name]} and {shard}): were they run with the "
                                 "same --shard?")
            seen[name] = shard
            settings = stored.settings or {}
            shared = {k: v for k, v in settings.items() if k != "source"}  # each submission's own source aside
            if shared not in settings_seen:
                settings_seen.append(shared)
            _copy_one(result.parent, out / name)
            write_submission(out / name, stored.document, settings)
            summary.merged.append(name)
    if len(settings_seen) > 1:
        summary.notes.append("the shards were graded with different settings (rubric, --only or grader version)")
    if summary.untrusted:
        summary.notes.append(f"left out {len(summary.untrusted)} result(s) whose signature this machine's key does "
                             "not verify (--trust-shards takes them as they are)")
    summary.merged.sort()
    return summary


def _copy_one(source: Path, dest: Path) -> None:
    """The submission's log and any extra files; write_submission writes the reports and result again."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name in (RESULT, GRADED_WITH, *REPORTS.values()) or entry.name.startswith("."):
            continue
        if entry.is_file() and not entry.is_symlink() and entry.name == LOG:
            shutil.copyfile(entry, dest / entry.name)
