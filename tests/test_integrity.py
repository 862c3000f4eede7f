"""grader.batch.integrity: the key a batch signs its stored results with, and what a signature covers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from grader import batch
from grader.batch import BatchOptions, integrity
from grader.batch.integrity import KEY_VAR

RESULTS = ROOT / "tests" / "results"


def _store(out: Path, name: str) -> None:
    (out / name).mkdir(parents=True)
    doc = json.loads((RESULTS / "graded.json").read_text(encoding="utf-8"))
    batch.write_submission(out / name, doc, batch.grading_settings(BatchOptions(out=out)))


def test_the_key_is_made_once_and_readable_only_by_its_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state" / "redis-grader" / "batch.key"
    monkeypatch.setenv(KEY_VAR, str(path))
    key = integrity.signing_key()
    assert key is not None and len(key) == integrity.KEY_BYTES and path.read_bytes() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert integrity.signing_key() == key


def test_the_key_lives_in_the_state_folder_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_VAR)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert integrity.key_path() == tmp_path / "redis-grader" / "batch.key"


def test_a_signature_covers_the_bytes_the_settings_and_the_folder() -> None:
    key = b"k" * integrity.KEY_BYTES
    mac = integrity.signature(key, b'{"grade": "B"}', {"only": []}, "alice")
    assert integrity.verified(key, b'{"grade": "B"}', {"only": []}, "alice", mac)
    assert not integrity.verified(key, b'{"grade": "S"}', {"only": []}, "alice", mac)
    assert not integrity.verified(key, b'{"grade": "B"}', {"only": ["cache.*"]}, "alice", mac)
    assert not integrity.verified(key, b'{"grade": "B"}', {"only": []}, "bob", mac)
    assert not integrity.verified(b"x" * integrity.KEY_BYTES, b'{"grade": "B"}', {"only": []}, "alice", mac)
    assert not integrity.verified(None, b'{"grade": "B"}', {"only": []}, "alice", mac)
    assert not integrity.verified(key, b'{"grade": "B"}', {"only": []}, "alice", None)


def test_a_result_copied_into_another_students_folder_is_not_kept(tmp_path: Path) -> None:
    """A stored result and its signature copied from alice's folder into bob's: bob's row must not become
    alice's grade (and alice appear twice in the gradebook)."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    for name in ("alice", "bob"):
        (subs / name).mkdir(parents=True)
    _store(out, "alice")
    (out / "bob").mkdir()
    for name in ("result.json", ".graded-with.json"):
        (out / "bob" / name).write_bytes((out / "alice" / name).read_bytes())
    planned = batch.plan(subs, BatchOptions(out=out))
    assert [s.name for s in planned.kept] == ["alice"] and [s.name for s in planned.to_grade] == ["bob"]


def test_results_signed_with_another_key_are_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "alice").mkdir(parents=True)
    _store(out, "alice")
    assert batch.plan(subs, BatchOptions(out=out)).kept
    monkeypatch.setenv(KEY_VAR, str(tmp_path / "other.key"))
    assert [s.name for s in batch.plan(subs, BatchOptions(out=out)).to_grade] == ["alice"]
