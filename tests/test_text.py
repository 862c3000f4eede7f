"""How evidence words things: lists a student reads, never Python reprs."""

from checks.leaderboard import entries_text


def test_leaderboard_entries_read_as_name_and_score() -> None:
    assert entries_text([("alice", 90.0), ("bob", 72.5), ("cat", 3)]) == ["alice: 90", "bob: 72.5", "cat: 3"]
    assert entries_text([]) == []


def test_evidence_and_reports_say_and_n_more_the_same_way() -> None:
    from grader.checksupport import requests_text
    from grader.reporters._common import more_text as report_more_text
    from grader.text import first_items, more_text

    assert report_more_text is more_text
    assert more_text(3) == "… and 3 more" and more_text(2, "lines above") == "… and 2 more lines above"
    assert first_items(["a", "b", "c", "d"], 2) == ["a", "b", "… and 2 more"]
    assert first_items(["a", "b"], 2) == ["a", "b"]
    assert requests_text(["r1", "r2", "r3"], limit=1) == ["r1", "… and 2 more"]  # type: ignore[list-item]


def test_text_every_report_can_encode() -> None:
    from grader.text import valid_unicode

    name = b"m\xffain.py".decode("utf-8", "surrogateescape")  # a file name that is not UTF-8, as Python reads it
    document = {"ok": "привет", name: [f"at {name}:3", ("\ud800",)], "n": 1, "none": None}
    assert valid_unicode(document) == {"ok": "привет", "m\\xffain.py": ["at m\\xffain.py:3", ["\\ud800"]], "n": 1,
                                       "none": None}
    assert valid_unicode("plain") == "plain"
    deep: list = []
    for _ in range(100_000):  # deeper than recursion could walk
        deep = [deep, name]
    assert valid_unicode(deep)[1] == "m\\xffain.py"


def test_printable_text_keeps_what_reads_and_drops_what_a_terminal_acts_on() -> None:
    from grader.text import printable, printable_line

    assert printable("a\x1b[31mred\x1b[0m b\x1b]0;title\x07c") == "ared bc"  # ANSI and OSC sequences go whole
    assert printable("x\x9b2Jy\x9d0;t\x9cz\x7f\x00") == "x2Jy0;tz"  # C1 controls (one-character ESC [ ...), DEL
    assert printable("\u202eRTL\u2066iso\u2069") == "RTLiso"  # what shows the rest of a line reversed
    assert printable("one\r\ntwo\rthree\tfour\n") == "one\ntwo\nthree\tfour\n"  # a lone CR would overwrite
    assert printable("Привет, café ✓") == "Привет, café ✓"
    assert printable_line("a\nb\tc  d") == "a b c  d"  # runs of spaces kept: it may be a name


def test_a_name_shows_its_control_characters_as_codes() -> None:
    from grader.text import printable_name

    assert printable_name("\x01ctl") == r"\x01ctl" != printable_name("ctl")  # two folders stay two
    assert printable_name("a\x1b[2Jb\x9b\u202ec\td\ne\rf") == r"a\x1b[2Jb\x9b\u202ec\x09d\x0ae\x0df"
    assert printable_name("Привет, café  ✓") == "Привет, café  ✓"
