"""The rules by which the timing checks stop paying an injected latency: a blocking app is recognised from its
commands coming one at a time, a limiter that cannot race from its scripts counting one by one, and a burst's
outcome is settled only when no later reply can change it. Pure logic on hand-made commands, no processes."""

from __future__ import annotations

import pytest

from checks.ratelimit_burst import COUNTED_ONE_BY_ONE, LOAD_REQUESTS, _decided, counted_one_by_one
from checks.serial_redis import one_at_a_time
from grader.api import Command, Reply

IP = "127.0.1.7"
KEY = f"rate:ip:{IP}"


def _command(seq: int, at: float, replied: float | None, name: str = "EVALSHA", reply: str | None = None,
             args: tuple[str, ...] = ("abc123", "1", KEY, "60")) -> Command:
    return Command(seq, 1, at, name, args, False, False, False, reply, replied=replied)


def _serial(count: int, gap: float = 0.05) -> list[Command]:
    """`count` scripts, each sent after the reply to the one before, counting 1, 2, 3..."""
    return [_command(n, n * gap, n * gap + gap * 0.9, reply=f":{n + 1}") for n in range(count)]


def _reply(status: int | None) -> Reply:
    return Reply("GET", "/products", IP, status, "", 0.05, None if status else "timed out")


def test_commands_sent_one_after_the_others_reply_are_one_at_a_time():
    assert one_at_a_time(_serial(4), 4)
    assert not one_at_a_time(_serial(3), 4), "too few answered to tell"


def test_a_command_sent_while_another_is_out_is_not_one_at_a_time():
    overlapping = _serial(5)
    overlapping[1] = _command(1, 0.01, 0.06, reply=":2")  # sent before the first one's reply came back (0.045)
    assert not one_at_a_time(overlapping, 4)
    out = [*_serial(4), _command(4, 0.2, None), _command(5, 0.2, None)]  # the last two out together
    assert not one_at_a_time(out, 4)


def test_a_blocking_app_with_an_atomic_counter_lets_the_delay_go():
    assert counted_one_by_one(_serial(COUNTED_ONE_BY_ONE), IP)
    assert not counted_one_by_one(_serial(COUNTED_ONE_BY_ONE - 1), IP)


def test_counts_that_repeat_or_jump_keep_the_delay():
    repeated = _serial(COUNTED_ONE_BY_ONE)
    repeated[2] = _command(2, 0.1, 0.145, reply=":2")  # two calls read the same count: a read-only script
    assert not counted_one_by_one(repeated, IP)
    allowed = [_command(c.seq, c.time, c.replied, reply=":1") for c in _serial(COUNTED_ONE_BY_ONE)]  # 1 = allowed
    assert not counted_one_by_one(allowed, IP)


def test_a_counter_changed_outside_a_script_keeps_the_delay():
    mixed = _serial(COUNTED_ONE_BY_ONE) + [_command(9, 0.5, 0.55, name="SET", reply="+OK", args=(KEY, "5"))]
    assert not counted_one_by_one(mixed, IP)


def test_other_commands_are_not_the_limiters_but_must_come_one_at_a_time_too():
    cache = _command(COUNTED_ONE_BY_ONE, 0.3, 0.35, name="GET", reply="nil", args=("products:all",))
    assert counted_one_by_one([*_serial(COUNTED_ONE_BY_ONE), cache], IP)
    early_cache = _command(COUNTED_ONE_BY_ONE, 0.01, 0.06, name="GET", reply="nil", args=("products:all",))
    assert not counted_one_by_one(sorted([*_serial(COUNTED_ONE_BY_ONE), early_cache], key=lambda c: c.time), IP)


@pytest.mark.parametrize(
    ("statuses", "settled"),
    [
        ([200] * 10, False),  # as many as expected so far: the rest may still be served
        ([200] * 11, True),  # more than one after another: a race, whatever follows
        ([429] * (LOAD_REQUESTS - 10), False),  # the other 10 may all be served
        ([429] * (LOAD_REQUESTS - 9), True),  # at most 9 can be served now
        ([None] * (LOAD_REQUESTS - 9), True),  # no answer refuses as surely as a 429
        ([], False),
    ],
)
def test_a_burst_is_settled_only_when_no_later_reply_can_change_the_count(statuses, settled):
    assert (_decided([_reply(s) for s in statuses], expected=10) is not None) == settled
