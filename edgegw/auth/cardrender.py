"""How a charger of a given format reports a card: :func:`render`, every :func:`variants`, and
which of them lose nothing (:func:`is_lossless`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from operator import xor
from typing import assert_never

from edgegw.auth.cardid import (
    CASCADE_TAG,
    FORMATS,
    IDTAG_MAX_LEN,
    CardId,
    IdTagFormat,
    UnrepresentableError,
)


def _bcc(data: bytes) -> int:
    """Block check character of an anticollision frame: XOR of its 4 bytes."""
    return reduce(xor, data, 0)


def _cl1_frame(uid: bytes) -> bytes:
    head = uid if len(uid) == 4 else bytes([CASCADE_TAG]) + uid[:3]
    return head + bytes([_bcc(head)])


def _fixed_field(uid: bytes, size: int) -> bytes:
    return uid[:size].ljust(size, b"\x00")


def _render_uid(uid: bytes, fmt: IdTagFormat) -> str | None:
    """The idTag for ``uid`` in ``fmt``, or None when it does not fit in 20 characters."""
    match fmt:
        case IdTagFormat.HEX | IdTagFormat.AUTO:
            return uid.hex().upper()
        case IdTagFormat.HEX_LOWER:
            return uid.hex()
        case IdTagFormat.HEX_REVERSED:
            return uid[::-1].hex().upper()
        case IdTagFormat.DEC_LE:
            return str(int.from_bytes(uid, "little")) if len(uid) <= 7 else None
        case IdTagFormat.DEC_BE:
            return str(int.from_bytes(uid, "big")) if len(uid) <= 7 else None
        case IdTagFormat.HEX_7:
            return _fixed_field(uid, 7).hex().upper()
        case IdTagFormat.HEX_6:
            return _fixed_field(uid, 6).hex().upper()
        case IdTagFormat.HEX_4:
            return uid[:4].hex().upper()
        case IdTagFormat.HEX_CL1:
            return _cl1_frame(uid).hex().upper()
        case IdTagFormat.HEX_NOPAD:
            return "".join(f"{b:X}" for b in uid)
        case _:
            assert_never(fmt)


def _key_renderers() -> dict[IdTagFormat, Callable[[bytes, str], str | None]]:
    """Per format: the upper-cased idTag of a UID, from the UID and its canonical (upper) hex.

    The same texts as ``_render_uid(uid, fmt).upper()``, derived from the hex already at hand:
    indexing 100,000 cards renders every variant of each, so this is on the start-up path.
    """

    def cl1(uid: bytes, hex_: str) -> str:
        if len(uid) == 4:
            return f"{hex_}{uid[0] ^ uid[1] ^ uid[2] ^ uid[3]:02X}"
        return f"88{hex_[:6]}{CASCADE_TAG ^ uid[0] ^ uid[1] ^ uid[2]:02X}"

    nopad_digits = tuple(f"{b:X}" for b in range(256))

    def nopad(uid: bytes, hex_: str) -> str:
        return hex_ if min(uid) >= 0x10 else "".join(map(nopad_digits.__getitem__, uid))

    return {
        IdTagFormat.HEX: lambda uid, hex_: hex_,
        IdTagFormat.HEX_LOWER: lambda uid, hex_: hex_,
        IdTagFormat.HEX_REVERSED: lambda uid, hex_: uid[::-1].hex().upper(),
        IdTagFormat.DEC_LE: lambda uid, hex_: (
            str(int.from_bytes(uid, "little")) if len(uid) <= 7 else None
        ),
        IdTagFormat.DEC_BE: lambda uid, hex_: str(int(hex_, 16)) if len(uid) <= 7 else None,
        IdTagFormat.HEX_7: lambda uid, hex_: hex_[:14].ljust(14, "0"),
        IdTagFormat.HEX_6: lambda uid, hex_: hex_[:12].ljust(12, "0"),
        IdTagFormat.HEX_4: lambda uid, hex_: hex_[:8],
        IdTagFormat.HEX_CL1: cl1,
        IdTagFormat.HEX_NOPAD: nopad,
    }


def render(card: CardId, fmt: IdTagFormat) -> str:
    """How a charger using ``fmt`` reports ``card``. The result is at most 20 characters.

    Tokens are reported verbatim in every format. ``AUTO`` renders the canonical form, the one
    OCPP recommends, for chargers whose format is not known.

    Raises :class:`UnrepresentableError` for a decimal format and a 10-byte UID (25 digits).
    """
    if card.uid is None:
        return card.canonical
    text = _render_uid(card.uid, fmt)
    if text is None:
        raise UnrepresentableError(
            f"{card.canonical} is a {len(card.uid)}-byte UID; {fmt.value} would need more than "
            f"{IDTAG_MAX_LEN} characters"
        )
    return text


def variants(card: CardId) -> dict[IdTagFormat, str]:
    """Every concrete format and how it reports ``card`` (unrepresentable ones left out)."""
    if card.uid is None:
        return dict.fromkeys(FORMATS, card.canonical)
    out: dict[IdTagFormat, str] = {}
    for fmt in FORMATS:
        text = _render_uid(card.uid, fmt)
        if text is not None:
            out[fmt] = text
    return out


def is_lossless(card: CardId, fmt: IdTagFormat) -> bool:
    """Whether ``fmt`` keeps everything needed to tell ``card`` from any other card.

    A lossy format (truncation, cascade frame, unpadded bytes) reports only part of the UID,
    so several cards may look the same on that charger.
    """
    uid = card.uid
    if uid is None:
        return True
    size = len(uid)
    match fmt:
        case IdTagFormat.AUTO | IdTagFormat.HEX | IdTagFormat.HEX_LOWER | IdTagFormat.HEX_REVERSED:
            return True
        case IdTagFormat.DEC_LE | IdTagFormat.DEC_BE | IdTagFormat.HEX_7:
            return size <= 7
        case IdTagFormat.HEX_6 | IdTagFormat.HEX_4 | IdTagFormat.HEX_CL1:
            return size == 4
        case IdTagFormat.HEX_NOPAD:
            return all(b >= 0x10 for b in uid)
        case _:
            assert_never(fmt)
