"""The RESP parser on its own: every type, any split of the stream, exact raw bytes kept."""

from __future__ import annotations

import math

import pytest

from grader.resp import (
    Attributed,
    Frame,
    ProtocolError,
    Push,
    RespError,
    RespParser,
    RespSet,
    SimpleString,
    Verbatim,
    describe,
    encode_command,
    split_inline,
)

# (wire bytes, parsed value, kind, short form)
CASES = [
    (b"+OK\r\n", SimpleString("OK"), "+", "+OK"),
    (b"-ERR wrong type\r\n", RespError("ERR wrong type"), "-", "-ERR wrong type"),
    (b":42\r\n", 42, ":", ":42"),
    (b":-7\r\n", -7, ":", ":-7"),
    (b"$5\r\nhello\r\n", b"hello", "$", '"hello"'),
    (b"$17\r\nseventeen bytes!!\r\n", b"seventeen bytes!!", "$", "$17"),
    (b"$3\r\n\x00\x04N\r\n", b"\x00\x04N", "$", "$3"),
    (b"$0\r\n\r\n", b"", "$", '""'),
    (b"$-1\r\n", None, "$", "nil"),
    (b"*-1\r\n", None, "*", "nil"),
    (b"*0\r\n", [], "*", "*0"),
    (b"*2\r\n$1\r\na\r\n:1\r\n", [b"a", 1], "*", "*2"),
    (b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", {"a": 1, "b": 2}, "%", "%2"),
    (b"~2\r\n+x\r\n+y\r\n", RespSet(["x", "y"]), "~", "~2"),
    (b">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n", Push(["message", "ch", b"hi"]), ">", ">3"),
    (b",3.25\r\n", 3.25, ",", ",3.25"),
    (b",inf\r\n", math.inf, ",", ",inf"),
    (b",-inf\r\n", -math.inf, ",", ",-inf"),
    (b"#t\r\n", True, "#", "#t"),
    (b"#f\r\n", False, "#", "#f"),
    (b"_\r\n", None, "_", "nil"),
    (b"(3492890328409238509324850943850943825024385\r\n", 3492890328409238509324850943850943825024385, "(", "(3492890328409238509324850943850943825024385"),
    (b"=15\r\ntxt:Some string\r\n", Verbatim("txt", b"Some string"), "=", "=11"),
    (b"!21\r\nSYNTAX invalid syntax\r\n", RespError("SYNTAX invalid syntax"), "!", "-SYNTAX invalid syntax"),
]


@pytest.mark.parametrize(("wire", "value", "kind", "short"), CASES, ids=[c[0][:12].decode() for c in CASES])
def test_every_type_whole_and_byte_by_byte(wire: bytes, value: object, kind: str, short: str) -> None:
    whole = RespParser().feed(wire)
    assert whole == [Frame(value, wire, kind)]
    assert type(whole[0].value) is type(value)
    assert describe(whole[0]) == short

    parser = RespParser()
    frames = []
    for i in range(len(wire)):
        got = parser.feed(wire[i : i + 1])
        assert got == [] or i == len(wire) - 1, "a value completed before its last byte"
        frames += got
    assert [f.raw for f in frames] == [wire]
    assert frames[0].value == value


def test_nan_double() -> None:
    [frame] = RespParser().feed(b",nan\r\n")
    assert math.isnan(frame.value)


def test_nested_aggregates_keep_raw_bytes_and_split_anywhere() -> None:
    wire = (
        b"*3\r\n"
        b"*2\r\n$3\r\nfoo\r\n*1\r\n:1\r\n"
        b"%1\r\n+k\r\n~2\r\n#t\r\n_\r\n"
        b"*0\r\n"
    )
    expected = [[b"foo", [1]], {"k": RespSet([True, None])}, []]
    for cut in range(1, len(wire)):
        parser = RespParser()
        frames = parser.feed(wire[:cut]) + parser.feed(wire[cut:])
        assert frames == [Frame(expected, wire, "*")], cut


def test_several_values_in_one_feed_and_a_partial_tail() -> None:
    parser = RespParser()
    frames = parser.feed(b"+OK\r\n:1\r\n$3\r\nab")
    assert [f.value for f in frames] == ["OK", 1]
    assert parser.unparsed() == b"$3\r\nab"
    assert [f.value for f in parser.feed(b"c\r\n")] == [b"abc"]
    assert parser.unparsed() == b""


def test_map_with_aggregate_keys_stays_usable() -> None:
    [frame] = RespParser().feed(b"%1\r\n*2\r\n:1\r\n:2\r\n+v\r\n")
    assert frame.value == {(1, 2): "v"}


def test_attribute_wraps_the_value_that_follows() -> None:
    wire = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n"
    [frame] = RespParser().feed(wire)
    assert frame.kind == "*"
    assert frame.raw == wire
    assert frame.value == Attributed([2039123, 9543892], {"key-popularity": {b"a": 0.19}})
    assert describe(frame) == "*2"


def test_attribute_inside_an_array() -> None:
    wire = b"*2\r\n:1\r\n|1\r\n+ttl\r\n:3\r\n$1\r\nx\r\n"
    [frame] = RespParser().feed(wire)
    assert frame.value == [1, Attributed(b"x", {"ttl": 3})]


def test_large_bulk_string_in_small_chunks() -> None:
    body = bytes(range(256)) * 40_000  # 10 MB, every byte value, CRLFs inside
    wire = b"$%d\r\n%s\r\n" % (len(body), body)
    parser = RespParser()
    frames = []
    for i in range(0, len(wire), 65536):
        frames += parser.feed(wire[i : i + 65536])
    assert len(frames) == 1
    assert frames[0].value == body
    assert frames[0].raw == wire


def test_binary_safe_bulk_strings() -> None:
    value = b"\r\n\x00\xff$3\r\n*1\r\n"
    wire = encode_command("SET", b"k", value)
    [frame] = RespParser(requests=True).feed(wire)
    assert frame.value == [b"SET", b"k", value]
    assert frame.raw == wire


def test_large_array_one_byte_at_a_time_is_linear_enough() -> None:
    wire = b"*2000\r\n" + b"$3\r\nabc\r\n" * 2000
    parser = RespParser()
    frames = []
    for i in range(len(wire)):
        frames += parser.feed(wire[i : i + 1])
    assert len(frames) == 1 and len(frames[0].value) == 2000


def test_requests_accept_multibulk_and_inline() -> None:
    parser = RespParser(requests=True)
    wire = b"PING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nset k \"a b\"\n\r\n"
    frames = parser.feed(wire)
    assert [(f.kind, f.value) for f in frames] == [
        ("inline", [b"PING"]),
        ("*", [b"GET", b"k"]),
        ("inline", [b"set", b"k", b"a b"]),
        ("inline", []),  # a blank line: Redis ignores it and sends no reply
    ]
    assert b"".join(f.raw for f in frames) == wire


def test_inline_split_like_redis() -> None:
    assert split_inline(b"  SET  k   v ") == [b"SET", b"k", b"v"]
    assert split_inline(b'SET k "a\\x41\\n\\"q"') == [b"SET", b"k", b'aA\n"q']
    assert split_inline(b"SET k 'it\\'s'") == [b"SET", b"k", b"it's"]
    assert split_inline(b"SET k \"\"") == [b"SET", b"k", b""]
    assert split_inline(b'SET k "unbalanced') == [b"SET", b"k", b'"unbalanced']


@pytest.mark.parametrize(
    "wire",
    [b"?x\r\n", b":12a\r\n", b"$3\r\nabcX\r\n", b"$-2\r\n", b"#x\r\n", b",abc\r\n", b"_x\r\n", b"*?\r\n"],
)
def test_protocol_errors(wire: bytes) -> None:
    parser = RespParser()
    with pytest.raises(ProtocolError):
        parser.feed(wire)
    with pytest.raises(ProtocolError):  # the stream has no known boundaries any more
        parser.feed(b"+OK\r\n")


def test_protocol_error_keeps_values_completed_before_it() -> None:
    parser = RespParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"+OK\r\n:1\r\n?garbage\r\n")
    assert [f.value for f in info.value.frames] == ["OK", 1]
    assert parser.unparsed() == b"?garbage\r\n"


def test_encode_command_round_trips() -> None:
    wire = encode_command("EVALSHA", "abc", 1, b"rate:ip:1")
    assert wire == b"*4\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n1\r\n$9\r\nrate:ip:1\r\n"
    assert RespParser(requests=True).feed(wire)[0].value == [b"EVALSHA", b"abc", b"1", b"rate:ip:1"]
