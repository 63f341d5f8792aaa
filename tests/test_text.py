"""The one escaper for bytes in messages (pycdb._text)."""

from __future__ import annotations

from pycdb._text import quote, show


def test_text_stays_readable_and_controls_are_escaped() -> None:
    assert show("café".encode()) == "café"
    assert show(b"a\tb\r\n\x7f") == "a\\x09b\\x0d\\x0a\\x7f"
    assert show(b"\xff\xfe") == "\\xff\\xfe"  # not UTF-8
    assert quote(b"1.2.3.") == "'1.2.3.'"


def test_c1_controls_and_reordering_marks_are_escaped_byte_by_byte() -> None:
    assert show(b"a\xc2\x9bb") == "a\\xc2\\x9bb"  # U+009B, a terminal's CSI
    assert show("x\u202ey".encode()) == "x\\xe2\\x80\\xaey"  # right-to-left override
    assert show("\u2066x\u2069".encode()) == "\\xe2\\x81\\xa6x\\xe2\\x81\\xa9"


def test_limit_cuts_and_says_so() -> None:
    assert show(b"abcdef", 3) == "abc..."
    assert show(b"abc", 3) == "abc"
