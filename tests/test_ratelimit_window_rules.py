"""checks/ratelimit_window.py's pure rules: which limiter hash is a token bucket (its key's TTL may start again with
every request, as a sliding window's may), and when a fixed window's TTL was set again. No processes, no clocks:
the fixtures `ratelimit-token-bucket` (passes) and `ratelimit-expire-each-served` (fails) grade them for real."""

from __future__ import annotations

from checks.ratelimit_window import _restarted, _token_bucket, _TtlReading, _without


def test_a_bucket_takes_tokens_and_moves_its_clock_on() -> None:
    assert _token_bucket({"tokens": "9", "ts": "1764540000000"}, {"tokens": "8.05", "ts": "1764540000300"})


def test_a_fixed_windows_hash_only_counts() -> None:
    assert not _token_bucket({"count": "1"}, {"count": "2"})  # HINCRBY
    assert not _token_bucket({"count": "1", "since": "1764540000"}, {"count": "2", "since": "1764540000"})
    assert not _token_bucket({"remaining": "9"}, {"remaining": "8"})  # a quota counted down, with no clock
    assert not _token_bucket({"/products": "1"}, {"/products": "2", "/health": "1"})  # a field new since is no move


def test_fields_that_are_not_numbers_are_no_evidence() -> None:
    assert not _token_bucket({"tokens": "nine", "ts": "a"}, {"tokens": "eight", "ts": "b"})


def test_a_restart_is_judged_on_the_fixed_windows_left() -> None:
    before = _TtlReading(0.0, {"rate:ip:a": 59_990, "bucket": 59_990}, 0.001)
    after = _TtlReading(0.4, {"rate:ip:a": 59_600, "bucket": 59_999}, 0.401)
    assert _restarted(before, after) is not None  # the bucket's TTL is back near full
    assert _restarted(_without(before, ["bucket"]), _without(after, ["bucket"])) is None  # the counter ran down
