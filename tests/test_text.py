"""How evidence words things: lists a student reads, never Python reprs."""

from checks.leaderboard import entries_text


def test_leaderboard_entries_read_as_name_and_score() -> None:
    assert entries_text([("alice", 90.0), ("bob", 72.5), ("cat", 3)]) == ["alice: 90", "bob: 72.5", "cat: 3"]
    assert entries_text([]) == []
