"""grader/figures.py turns replies and commands into the figure shapes of docs/figures.md: times from the figure's
own zero in ms rounded to 0.1, lists capped with `truncated` set, and every figure valid against the result
document's schema."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from grader import figures
from grader.figures import ExpirySeen, Moment
from grader.probe import Reply
from grader.proxy_trace import Command
from grader.schemas import result_schema

T0 = 1000.0  # a time.monotonic() reading
SCHEMA = result_schema()
FIGURE = Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/figure"})


def reply(start: float, elapsed: float, status: int | None = 200, path: str = "/products") -> Reply:
    return Reply("GET", path, "127.0.1.7", status, "", elapsed, None if status else "timed out", started=T0 + start)


def command(seq: int, at: float, name: str = "GET", args: tuple[str, ...] = ("rate:ip:127.0.1.7",),
            reply: str | None = "nil", replied: float | None = None, conn: int = 1) -> Command:
    return Command(seq, conn, T0 + at, name, args, False, False, False, reply=reply,
                   replied=None if replied is None else T0 + replied)


def valid(figure: dict) -> dict:
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in FIGURE.iter_errors(figure)]
    assert not errors, errors
    return figure


def test_request_shape_rounds_to_a_tenth_of_a_millisecond_from_zero():
    shape = figures.request_shape(reply(0.01234, 0.05006), T0, 3)
    assert shape == {"lane": 3, "start_ms": 12.3, "end_ms": 62.4, "status": 200, "label": "200"}
    assert figures.request_shape(reply(0.0, 1.0, status=None), T0, 0)["label"] == "no answer"


def test_command_shape_keeps_the_reply_time_key_and_a_short_reply():
    shape = figures.command_shape(command(1, 0.002, reply="-ERR " + "x" * 80, replied=0.0525), T0)
    assert shape["at_ms"] == 2.0 and shape["end_ms"] == 52.5
    assert shape["name"] == "GET" and shape["key"] == "rate:ip:127.0.1.7"
    assert len(shape["reply"]) == figures.REPLY_PREVIEW and shape["reply"].endswith("...")
    assert figures.command_shape(command(2, 0.0, reply=None), T0)["end_ms"] is None
    script = command(3, 0.0, "EVALSHA", ("abc123", "1", "rate:ip:127.0.1.7", "60"), reply=":4")
    assert figures.command_shape(script, T0)["key"] == "rate:ip:127.0.1.7"


def test_command_label_shows_the_options_never_the_value():
    assert figures.command_label(command(0, 0, "SET", ("products:all", '[{"name": "x"}]', "EX", "60"))) == \
        "SET products:all EX 60"
    assert figures.command_label(command(0, 0, "SETEX", ("products:all", "60", "[...]"))) == "SETEX products:all 60"
    assert figures.command_label(command(0, 0, "EVALSHA", ("abc", "1", "rate:ip:1", "60"))) == \
        "EVALSHA rate:ip:1 60"


def test_race_counts_served_and_caps_requests_and_commands():
    replies = [reply(i * 0.001, 0.06, 200 if i < 14 else 429) for i in range(120)]
    commands = [command(i, 0.001 + i * 0.0001) for i in range(250)]
    figure = valid(figures.race_figure(replies, commands, expected_served=10, latency_s=0.05, caption="c"))
    assert figure["served"] == 14 and figure["expected_served"] == 10
    assert figure["latency_injected_ms"] == 50.0
    assert len(figure["requests"]) == figures.MAX_REQUESTS and len(figure["commands"]) == figures.MAX_COMMANDS
    assert figure["truncated"] is True
    assert [r["lane"] for r in figure["requests"][:3]] == [0, 1, 2]
    small = figures.race_figure(replies[:5], commands[:5], expected_served=10, latency_s=0.05, caption="c")
    assert small["truncated"] is False and small["requests"][0]["start_ms"] == 0.0


def test_countdown_counts_from_the_first_write_in_order():
    moments = [
        figures.ttl_moment(T0 + 0.02, -1),
        Moment(T0 + 0.005, "written", "SET products:all"),
        figures.request_moment(reply(0.0, 0.01), "miss"),
    ]
    figure = valid(figures.countdown_figure("products:all", moments, ttl_limit_s=60, caption="c"))
    assert [e["event"] for e in figure["events"]] == ["written", "miss", "ttl"]
    assert figure["events"][0]["at_s"] == 0.0 and figure["events"][1]["at_s"] == 0.005
    assert figure["events"][2]["ttl_s"] == -1 and figure["events"][2]["label"] == "no TTL"
    assert figure["events"][1]["status"] == 200 and figure["events"][1]["label"] == "GET /products -> 200"
    assert figures.ttl_moment(T0, figures.ttl_seconds(59_874)).ttl_s == 59.874
    assert figures.ttl_moment(T0, figures.ttl_seconds(-2)).label == "key missing"
    many = [Moment(T0 + i, "request") for i in range(60)]
    capped = valid(figures.countdown_figure("k", many, ttl_limit_s=None, caption="c"))
    assert len(capped["events"]) == figures.MAX_EVENTS and capped["truncated"] is True
    with pytest.raises(ValueError):
        Moment(T0, "exploded")


def test_stampede_times_are_from_each_expiry_zero_and_share_the_command_cap():
    first = ExpirySeen("fail", 0, 80, T0, T0 + 0.8, [T0 + 0.81 + i / 1000 for i in range(150)],
                       [T0 + 0.805 + i / 1000 for i in range(150)])
    second = ExpirySeen("pass", 2, 40, T0 + 10, T0 + 12.5, [T0 + 12.4, T0 + 12.45], [])
    figure = valid(figures.stampede_figure([first, second], max_writes=3, max_early_writes=5, caption="c"))
    one, two = figure["expiries"]
    assert (one["index"], one["writes"], one["misses"], one["verdict"]) == (1, 150, 150, "fail")
    assert one["expired_at_ms"] == 800.0 and one["write_ms"][0] == 810.0
    assert len(one["write_ms"]) + len(one["miss_ms"]) + len(two["write_ms"]) <= figures.MAX_COMMANDS
    assert figure["truncated"] is True
    assert two["expired_at_ms"] == 2500.0 and two["early_writes"] == 2
    with pytest.raises(ValueError):
        figures.stampede_figure([ExpirySeen("maybe", 0, 1, T0, T0, [], [])], max_writes=3, max_early_writes=5,
                                caption="c")


def test_round_trips_group_the_commands_of_one_read():
    piped = [command(i, 0.01, "ZADD", ("leaderboard", "1", f"p{i}"), reply=":1") for i in range(10)]
    figure = valid(figures.round_trips_figure(piped, pipelined=True, caption="c"))
    assert len(figure["groups"]) == 1 and len(figure["groups"][0]["commands"]) == 10
    assert figure["commands_total"] == 10 and figure["groups"][0]["at_ms"] == 0.0
    single = [command(i, 0.01 * i, "ZADD", ("leaderboard", "1", f"p{i}"), reply=":1") for i in range(10)]
    figure = valid(figures.round_trips_figure(single, pipelined=False, caption="c"))
    assert [g["round_trip"] for g in figure["groups"]] == list(range(1, 11))
    assert figure["groups"][3]["at_ms"] == 30.0
    # Same moment, other connection: another round trip.
    other = [command(0, 0.01, "ZADD", conn=1), command(1, 0.01, "ZADD", conn=2)]
    assert len(figures.round_trip_groups(other)) == 2
    huge = [command(i, 0.0, "ZADD") for i in range(300)]
    figure = valid(figures.round_trips_figure(huge, pipelined=True, caption="c"))
    assert figure["truncated"] is True and figure["commands_total"] == 300
    assert sum(len(g["commands"]) for g in figure["groups"]) == figures.MAX_COMMANDS


def test_event_loop_draws_one_lane_per_request():
    staircase = [reply(0.0, 0.1 * (i + 1), path="/health") for i in range(10)]
    figure = valid(figures.event_loop_figure(staircase, latency_s=0.1, serialized=8.876, max_serialized=6.0,
                                             caption="c"))
    assert figure["serialized_round_trips"] == 8.88 and figure["latency_injected_ms"] == 100.0
    assert [r["end_ms"] for r in figure["requests"][:3]] == [100.0, 200.0, 300.0]
    assert figure["requests"][0]["label"] == "GET /health"


def test_a_figure_of_an_unknown_kind_or_shape_is_rejected_by_the_schema():
    good = figures.event_loop_figure([reply(0, 0.1)], latency_s=0.1, serialized=0, max_serialized=6, caption="c")
    assert not list(FIGURE.iter_errors(good))
    assert list(FIGURE.iter_errors({**good, "kind": "pie"}))
    assert list(FIGURE.iter_errors({**good, "requests": [{"lane": 0}]}))
    assert list(FIGURE.iter_errors({k: v for k, v in good.items() if k != "caption"}))
