"""loggable(): outside data made safe for a log line."""

from __future__ import annotations

from edgegw.security.loggable import loggable


def test_text_is_quoted_escaped_and_clipped() -> None:
    assert loggable("Heartbeat") == "'Heartbeat'"
    assert loggable("Heartbeat", quote=False) == "Heartbeat"
    assert loggable("") == "''"
    forged = loggable("id1\n2026-01-01 WARNING forged line\r\x1b[31m")
    assert "\n" not in forged and "\r" not in forged and "\x1b" not in forged
    assert forged == "'id1\\n2026-01-01 WARNING forged line\\r\\x1b[31m'"
    assert loggable("\ud800") == "'\\ud800'"  # a lone surrogate, printable as an escape
    huge = loggable("A" * 65536)
    assert len(huge) < 150 and huge.endswith("…(+65416 chars)")
    assert loggable("é and ü are fine") == "'é and ü are fine'"


def test_numbers_bytes_and_anything_else() -> None:
    assert loggable(42) == "42" and loggable(True) == "True" and loggable(None) == "None"
    assert loggable(10**5000) == "<int of 16610 bits>"  # str() of it would raise
    assert loggable(b"\x00\xffab") == "b'\\x00\\xffab'"
    assert len(loggable(b"x" * 10000)) < 150
    assert loggable([1, "a\nb"]) == "[1, 'a\\nb']"
    assert loggable([10**5000]).startswith("<unprintable list")

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert loggable(Hostile()) == "<unprintable Hostile: RuntimeError>"
