"""Outside data made safe to put in a log line.

Anything a charger or the cloud sends (an action name, a message id, a URL path, a certificate
name, a payload value) may be megabytes long, hold a newline that forges a second log line, hold
terminal escape sequences, or be an integer too large for ``str()`` (Python refuses to convert
integers above 4,300 digits and raises, which turned one frame into a 30-line traceback).

:func:`loggable` turns any such value into one short, printable, repr-like string: control
characters and newlines escaped, at most ``limit`` characters with the length of what was cut,
huge integers described by their size. Use it for every ``%s``/``%r`` argument of a log call
that comes from outside; it never raises.
"""

from __future__ import annotations

from typing import Final

DEFAULT_LIMIT: Final = 120
# Integers beyond this many bits are described, not printed (str() of a 4,300-digit one raises).
_MAX_INT_BITS: Final = 256


def _escape(text: str) -> str:
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


def loggable(value: object, limit: int = DEFAULT_LIMIT, *, quote: bool = True) -> str:
    """``value`` as one printable line of at most about ``limit`` characters (never raises).

    Strings keep their text (quoted, as ``%r`` would, so an empty or blank one shows; unquoted
    with ``quote=False``, for text inside a sentence), with control characters, newlines and
    lone surrogates escaped; bytes are shown as ``b'...'``; a huge integer as ``<int of N
    bits>``; anything else by its ``repr``, clipped.
    """
    try:
        if isinstance(value, str):
            # Escape only the part that is kept: a 64 kB value costs no more than a short one.
            clipped = value[: limit + 1]
            text = _escape(clipped[:limit])
            shown = f"'{text}'" if quote else text
            if len(value) > limit:
                return f"{shown}…(+{len(value) - limit} chars)"
            return shown
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value[: limit + 1])
            return _clip(repr(data), limit + 3)
        if isinstance(value, bool) or value is None:
            return repr(value)
        if isinstance(value, int):
            if value.bit_length() > _MAX_INT_BITS:
                return f"<int of {value.bit_length()} bits>"
            return _clip(str(value), limit)
        return _clip(_escape(repr(value)), limit)
    except Exception as exc:  # a hostile __repr__, a recursion, an integer too large
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
