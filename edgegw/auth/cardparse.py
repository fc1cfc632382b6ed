"""Reading a card from installer input or a charger's tag: what can be cleaned up is, and what
would become a silently wrong card (garbage, half a UID, a lost nibble, a bare number that
could be decimal or hex, a random UID) is refused with the reason.
"""

from __future__ import annotations

import re
from typing import Final, Literal, assert_never

from edgegw.auth.cardid import (
    CASCADE_TAG,
    FORMATS,
    IDTAG_MAX_LEN,
    UID_SIZES,
    AmbiguousCardIdError,
    CardId,
    CardIdError,
    IdTagFormat,
    LostNibbleError,
    NotAUidError,
    PartialUidError,
    RandomUidError,
    _check_printable,
)
from edgegw.auth.cardrender import _bcc

_PLAIN_HEX: Final = re.compile(r"(?:0[xX])?([0-9A-Fa-f]+)")


_SEPARATED_HEX: Final = re.compile(r"[0-9A-Fa-f]{1,2}(?:(?:\s*[:-]\s*|\s+)[0-9A-Fa-f]{1,2})+")


_SEPARATORS: Final = re.compile(r"[\s:-]+")


_DIGITS: Final = re.compile(r"[0-9]+")


def parse_card_id(
    text: str, fmt: IdTagFormat = IdTagFormat.AUTO, *, allow_random: bool = False
) -> CardId:
    """Read a card id typed by an installer or reported by a charger in format ``fmt``.

    With ``AUTO`` (installer input) the text is read as hex in any case, with optional
    separators (``:``, ``-``, spaces; a byte written as one digit between separators is
    zero-padded) or an ``0x`` prefix. Stray cascade tags and BCC bytes are removed
    (``88 04 A3 C6 <BCC> ...``, ``DD17380AF8``), and zero padding of a shorter UID is dropped
    (``E43AC9D2000000``). Text that is not hex-shaped is an opaque token.

    With a concrete format, the text is read the way that format writes it, so
    ``parse_card_id(render(card, fmt), fmt) == card`` whenever :func:`is_lossless` holds. A
    decimal format accepts any number of leading zeros. Text that does not have the format's
    shape (letters under ``dec_le``, say) is an opaque token.

    Raises a :class:`CardIdError` (a ``ValueError``) with the reason for: empty or
    non-printable text, a token longer than 20 characters, an odd number of hex digits
    (:class:`LostNibbleError`), half a UID (:class:`PartialUidError`), a bare number that is
    not a canonical hex length under ``AUTO`` (:class:`AmbiguousCardIdError`: decimal or
    hex?), and a random UID unless ``allow_random`` (:class:`RandomUidError`).
    """
    shown = text.strip()
    if not shown:
        raise CardIdError("empty card id")
    _check_printable(shown)

    card: CardId
    match fmt:
        case IdTagFormat.DEC_LE | IdTagFormat.DEC_BE:
            if not _DIGITS.fullmatch(shown):
                return _token(shown)
            card = _from_decimal(shown, fmt)
        case IdTagFormat.HEX_REVERSED:
            raw = _hex_bytes(shown)
            if raw is None:
                return _token(shown)
            card = CardId(uid=_clean_uid(raw[::-1], shown))
        case IdTagFormat.AUTO:
            if _DIGITS.fullmatch(shown) and len(shown) not in (8, 14, 20):
                raise _ambiguous_number(shown)
            raw = _hex_bytes(shown)
            if raw is None:
                return _token(shown)
            card = CardId(uid=_clean_uid(raw, shown))
        case (
            IdTagFormat.HEX
            | IdTagFormat.HEX_LOWER
            | IdTagFormat.HEX_7
            | IdTagFormat.HEX_6
            | IdTagFormat.HEX_4
            | IdTagFormat.HEX_CL1
            | IdTagFormat.HEX_NOPAD
        ):
            raw = _hex_bytes(shown)
            if raw is None:
                return _token(shown)
            card = CardId(uid=_clean_uid(raw, shown))
        case _:
            assert_never(fmt)

    if card.is_random_uid and not allow_random:
        raise RandomUidError(
            f"{shown!r} is a random UID (4 bytes starting with 08): the card makes up a new one "
            "on every tap, so it cannot be used for authorisation"
        )
    return card


def require_uid(card: CardId, text: str) -> CardId:
    """``card``, read from installer ``text`` without a format, if it is a card UID.

    Without a format an installer means a UID: text that is not one is a typo far more often
    than a token (``04A1B2C3D4E5FG``, ``AB:CD:EF:01Kim``), and enrolling it as a token would
    enrol a card no charger ever reports. Raises :class:`NotAUidError` naming the first
    character that is not hex; a real token is given with the format ``token``.
    """
    if card.is_uid:
        return card
    shown = text.strip()
    bad = next(
        ((n, c) for n, c in enumerate(shown, 1) if c not in "0123456789abcdefABCDEF:- "), None
    )
    why = (
        f"{bad[1]!r} (character {bad[0]}) is not a hex digit"
        if bad is not None
        else "a UID is 4, 7 or 10 bytes in hex"
    )
    raise NotAUidError(
        f"{shown!r} is not a valid card UID: {why} (a UID reads like E43AC9D2 or "
        "04:A1:B2:C3:D4:E5:F6)"
    )


def interpretations(text: str) -> dict[IdTagFormat, CardId]:
    """Every concrete format under which ``text`` reads as a card UID, and the card it gives.

    For the CLI: an installer types the number printed on a card and sees the candidates.
    Random UIDs are included (check :attr:`CardId.is_random_uid`).
    """
    out: dict[IdTagFormat, CardId] = {}
    for fmt in FORMATS:
        try:
            card = parse_card_id(text, fmt, allow_random=True)
        except CardIdError:
            continue
        if card.is_uid:
            out[fmt] = card
    return out


def _token(shown: str) -> CardId:
    if len(shown) > IDTAG_MAX_LEN:
        raise CardIdError(
            f"{shown!r} has {len(shown)} characters and is not a card UID; an idTag "
            "(OCPP CiString20) holds at most 20"
        )
    return CardId(token=shown)


def _ambiguous_number(shown: str) -> AmbiguousCardIdError:
    readings = interpretations(shown)
    grouped: dict[CardId, list[str]] = {}
    for fmt, card in readings.items():
        grouped.setdefault(card, []).append(fmt.value)
    listed = "; ".join(f"{card.canonical} ({', '.join(fmts)})" for card, fmts in grouped.items())
    lost = (
        " As hex it has an odd number of digits, so a byte may have lost its leading zero."
        if len(shown) % 2
        else ""
    )
    return AmbiguousCardIdError(
        f"{shown!r} is a bare number, but not 8, 14 or 20 digits long, so it is not clear "
        f"whether it is hex or the decimal number printed on a card.{lost} Give its format "
        f"(dec_le, dec_be, hex, ...). Possible readings: {listed or 'none'}. "
        "If it is not a card UID at all, add it as a token.",
        readings,
    )


def _from_decimal(digits: str, fmt: IdTagFormat) -> CardId:
    if len(digits) > IDTAG_MAX_LEN:
        raise CardIdError(f"{digits!r} has {len(digits)} digits; an idTag holds at most 20")
    value = int(digits)
    order: Literal["little", "big"] = "little" if fmt is IdTagFormat.DEC_LE else "big"
    for size in (4, 7):
        if value < 1 << (8 * size):
            return CardId(uid=value.to_bytes(size, order))
    raise CardIdError(
        f"{digits} is larger than any 7-byte UID; {fmt.value} cannot hold a 10-byte UID"
    )


def _hex_bytes(shown: str) -> bytes | None:
    """Bytes of a hex-shaped text, or None if it is not hex-shaped.

    Separated groups may have one digit: that byte lost its leading zero, and the separator
    shows where, so it is restored. Without separators an odd digit count cannot be repaired.
    """
    if _SEPARATED_HEX.fullmatch(shown):
        return bytes(int(group, 16) for group in _SEPARATORS.split(shown))
    match = _PLAIN_HEX.fullmatch(shown)
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) % 2:
        raise _lost_nibble(shown, digits)
    return bytes.fromhex(digits)


def _lost_nibble(shown: str, digits: str) -> LostNibbleError:
    candidates: list[CardId] = []
    size = (len(digits) + 1) // 2
    if size in UID_SIZES:
        for byte in range(size):
            pos = 2 * byte
            try:
                candidates.append(CardId(uid=bytes.fromhex(digits[:pos] + "0" + digits[pos:])))
            except CardIdError:
                continue
    listed = ", ".join(c.canonical for c in candidates)
    return LostNibbleError(
        f"{shown!r} has {len(digits)} hex digits, an odd number: a byte probably lost its "
        "leading zero (05 written as 5), so the UID cannot be recovered. Re-read the card, or "
        "type it with separators so each byte is clear (A4:B2:63:5)"
        + (f"; it could be {listed}" if listed else "")
        + ". If it is not a card UID, add it as a token.",
        tuple(candidates),
    )


def _clean_uid(raw: bytes, shown: str) -> bytes:
    """Turn what a reader or charger produced into the UID bytes, or explain why not."""
    if not any(raw):
        raise CardIdError(f"{shown!r} is all zeros: the reader returned no UID")
    if raw[0] == CASCADE_TAG:
        return _from_cascade_frames(raw, shown)
    if len(raw) == 5 and _bcc(raw[:4]) == raw[4]:
        return raw[:4]  # 4-byte UID followed by its BCC (raw CL1 frame)
    for size in (4, 7):
        if len(raw) > size and not any(raw[size:]):
            return raw[:size]  # a shorter UID padded with zeros
    if len(raw) in UID_SIZES:
        return raw
    if len(raw) == 6:
        raise PartialUidError(
            f"{shown!r} has 6 bytes: most likely a 7-byte UID with its last byte cut off (some "
            "readers keep only 6 bytes); read the card with a reader that returns the full UID",
            raw,
        )
    if len(raw) < 4:
        raise CardIdError(
            f"{shown!r} has only {len(raw)} bytes; a card UID has 4, 7 or 10 bytes. 3-byte "
            "numbers (Wiegand-26, printed '6H>8D' codes) do not identify a card uniquely"
        )
    extra = " (8-byte FeliCa or ISO 15693 ids can be added as tokens)" if len(raw) == 8 else ""
    raise CardIdError(
        f"{shown!r} has {len(raw)} bytes; an ISO 14443 card UID has 4, 7 or 10 bytes "
        f"(8, 14 or 20 hex digits){extra}"
    )


def _from_cascade_frames(raw: bytes, shown: str) -> bytes:
    """UID from concatenated anticollision frames, each ``88 u u u`` but the last ``u u u u``.

    Frames carry a BCC (5 bytes each) or not (4 bytes each). If every frame starts with the
    cascade tag, the UID is incomplete.
    """
    for width in (5, 4):
        if len(raw) % width or not 1 <= len(raw) // width <= 3:
            continue
        frames = [raw[i : i + width] for i in range(0, len(raw), width)]
        if width == 5 and any(_bcc(f[:4]) != f[4] for f in frames):
            continue
        uid = b""
        complete = False
        for i, frame in enumerate(frames):
            if frame[0] == CASCADE_TAG:
                uid += frame[1:4]
            elif i == len(frames) - 1:
                uid += frame[:4]
                complete = True
            else:
                break
        else:
            if complete:
                return uid
            raise PartialUidError(
                f"{shown!r} holds only {len(frames)} of the anticollision frames of a longer "
                f"UID (88 is the ISO 14443 cascade tag): the UID starts {uid.hex().upper()} but "
                "the rest is missing. Read the card with a reader that returns the full UID",
                uid,
            )
    raise CardIdError(
        f"{shown!r} starts with 88, the ISO 14443 cascade tag, but is not a sequence of "
        "anticollision frames (88 + 3 UID bytes [+ BCC] per level, BCC = XOR of the 4 bytes "
        "before it); no card UID starts with 88"
    )
