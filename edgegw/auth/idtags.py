"""Card identity: one canonical form per RFID card, and every form a charger reports it in.

Why this module exists
----------------------
OCPP 1.6 leaves the idTag format open (``IdToken`` is a ``CiString20``: at most 20 printable
ASCII characters, compared case-insensitively) and only *recommends* the hex of an ISO 14443
UID with byte 0 first. In the field the same card reaches the gateway as ``7186A61E`` from one
charger and ``1EA68671`` (bytes reversed) from the next, as the decimal number printed on the
card, in lowercase, truncated to 4 or 6 bytes, padded with ``00``, with a stray cascade tag
(``88``) or BCC byte, or with a byte that lost its leading zero. Tokens that are not UIDs at
all (app tokens, virtual tags, eMAIDs, ``Mobile000001``) must pass through untouched.

So the gateway keeps a single canonical form for every card, :class:`CardId`, and treats
the way a charger writes a card as a property of that charger, :class:`IdTagFormat`:

* :func:`parse_card_id` reads installer input (CLI, CSV) or a tag in a known charger format
  and cleans up what can be cleaned up. It refuses, with a message that says why, what
  would otherwise become a silently wrong card: garbage, half a UID, a lost nibble,
  a bare number that could be decimal or hex, a random UID.
* :func:`render` and :func:`variants` say how a charger of a given format reports a card. The
  gateway uses them to push local lists to chargers, and the CLI uses them to show what each
  charger will report.
* :class:`CardIndex` maps every variant of every known card back to the card. A lookup is
  a few dict probes and costs microseconds, even with 100,000 cards. For :attr:`IdTagFormat.AUTO`
  it also reports *which* variant matched ("CP12 reports reversed hex").

Ambiguity policy
----------------
Variants of different cards can collide: the reversed hex of one card is the canonical hex of
another, and two 7-byte cards share their first 4 bytes. A lookup therefore returns every match
and resolves to a card only when the evidence points at exactly one:

1. The canonical interpretation wins. If the presented tag *is* a known card's canonical form,
   that card is chosen. Under a fixed format, a match in that format counts the same, because
   a charger echoes a RemoteStart idTag verbatim.
2. Under ``AUTO``, a lossless variant (reversed hex, decimal, ...) beats a lossy one
   (truncated, cascade frame).
3. Two different cards on the same rung are never guessed between: the lookup returns no card.

Whenever more than one card matched, :attr:`CardLookup.ambiguous` is set and all matches are
exposed, so the caller can log and show the collision.

Known limits
------------
* A 7-byte UID that ends in ``00 00 00`` cannot be told from a zero-padded 4-byte UID. It is read
  as the latter. The same holds for a 10-byte UID ending in zeros.
* A bare 8-, 14- or 20-digit number is read as hex (the OCPP recommendation), never as decimal.
  A printed decimal number is entered with its format (``dec_le`` / ``dec_be``).
* 3-byte printed numbers (Wiegand-26, "6H>8D") do not identify a card and are refused.
* A UID is an identifier, not a credential: 4-byte UIDs are reused (NUID), and "UID
  changeable" clone cards exist. Per-tag expiry and blocking are the mitigation, not this
  module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import reduce
from operator import xor
from types import MappingProxyType
from typing import Final, Literal, assert_never

UID_SIZES: Final[tuple[int, ...]] = (4, 7, 10)
"""ISO/IEC 14443-3 single, double and triple size UIDs, in bytes."""

CASCADE_TAG: Final = 0x88
"""Cascade tag CT: first byte of an anticollision frame that is not the last one. ISO 14443-3
forbids it as UID byte 0, which makes a leading ``88`` unambiguous."""

RANDOM_UID_BYTE0: Final = 0x08
"""UID byte 0 of a 4-byte random ID (RID), which changes every time the card is powered."""

IDTAG_MAX_LEN: Final = 20
"""OCPP 1.6 ``IdToken`` is a ``CiString20Type``."""


class IdTagFormat(StrEnum):
    """How a charger writes a card's UID into the idTag.

    The member order is the preference order used when one presented tag matches several
    variants. Opaque tokens are reported verbatim in every format. Examples are for the UID
    ``E4 3A C9 D2``. "Lossless for" gives the UID sizes the format keeps whole. For other sizes
    the format shows only part of the UID, so several cards can look the same.

    ``AUTO``
        Format unknown. Lookups try every format, and rendering gives the canonical form.
    ``HEX``
        Uppercase hex, UID byte 0 first: ``E43AC9D2``. This is the OCPP recommendation and the
        canonical form. Lossless for all sizes.
    ``HEX_LOWER``
        The same in lowercase, ``e43ac9d2`` (Alpitronic). Lossless for all sizes.
    ``HEX_REVERSED``
        Hex with the bytes reversed, ``D2C93AE4`` (KEBA local lists, Wiegand converters).
        Lossless for all sizes.
    ``DEC_LE``
        Decimal of the UID read little-endian, ``3536403172``: the usual printed card number
        ("8H>10D"). Lossless for 4 and 7 bytes. A 10-byte UID does not fit in 20 digits.
    ``DEC_BE``
        Decimal of the UID read big-endian, ``3829058002``. Lossless for 4 and 7 bytes.
    ``HEX_7``
        A 7-byte field. 4-byte UIDs are padded with zeros (``E43AC9D2000000``) and 10-byte
        ones are cut. Lossless for 4 and 7 bytes.
    ``HEX_6``
        A 6-byte field: 4-byte UIDs padded with ``0000``, longer ones cut (SmartEVSE one-wire
        reader). Lossless for 4 bytes.
    ``HEX_4``
        The first 4 bytes only, for chargers with a 4-byte tag field (DBT, per Etrel), so
        7-byte cards are truncated. Lossless for 4 bytes.
    ``HEX_CL1``
        The raw first anticollision frame: a 4-byte UID plus BCC, ``E43AC9D2C5`` (MFRC522
        drivers), or ``88`` plus 3 bytes plus BCC for longer UIDs. Lossless for 4 bytes.
    ``HEX_NOPAD``
        Each byte printed without its leading zero, so ``05`` becomes ``5`` (naive byte-by-byte
        printing in reader firmware). Lossless only when no byte is below ``10``.
    """

    AUTO = "auto"
    HEX = "hex"
    HEX_LOWER = "hex_lower"
    HEX_REVERSED = "hex_reversed"
    DEC_LE = "dec_le"
    DEC_BE = "dec_be"
    HEX_7 = "hex_7"
    HEX_6 = "hex_6"
    HEX_4 = "hex_4"
    HEX_CL1 = "hex_cl1"
    HEX_NOPAD = "hex_nopad"


FORMATS: Final[tuple[IdTagFormat, ...]] = tuple(f for f in IdTagFormat if f is not IdTagFormat.AUTO)
"""Every concrete format, in preference order."""

_RANK: Final = MappingProxyType({f: i for i, f in enumerate(FORMATS)})
_CANONICAL_FORMATS: Final = frozenset({IdTagFormat.HEX, IdTagFormat.HEX_LOWER})
_DECIMAL_FORMATS: Final = frozenset({IdTagFormat.DEC_LE, IdTagFormat.DEC_BE})

_PLAIN_HEX: Final = re.compile(r"(?:0[xX])?([0-9A-Fa-f]+)")
_HEX_DIGITS: Final = re.compile(r"[0-9A-Fa-f]+")
_SEPARATED_HEX: Final = re.compile(r"[0-9A-Fa-f]{1,2}(?:(?:\s*[:-]\s*|\s+)[0-9A-Fa-f]{1,2})+")
_SEPARATORS: Final = re.compile(r"[\s:-]+")
_DIGITS: Final = re.compile(r"[0-9]+")


# --------------------------------------------------------------------------------------------
# Errors


class CardIdError(ValueError):
    """The text is not a usable card id. The message says why and what to do instead."""


class AmbiguousCardIdError(CardIdError):
    """The text reads as different cards depending on the format. ``candidates`` lists them."""

    def __init__(self, message: str, candidates: dict[IdTagFormat, CardId]) -> None:
        super().__init__(message)
        self.candidates = candidates


class LostNibbleError(CardIdError):
    """Odd number of hex digits: a byte was printed without its leading zero.

    ``candidates`` holds the UIDs obtained by restoring one zero at each byte boundary.
    """

    def __init__(self, message: str, candidates: tuple[CardId, ...]) -> None:
        super().__init__(message)
        self.candidates = candidates


class PartialUidError(CardIdError):
    """Only the start of a longer UID is known (``prefix``). The card cannot be identified."""

    def __init__(self, message: str, prefix: bytes) -> None:
        super().__init__(message)
        self.prefix = prefix


class RandomUidError(CardIdError):
    """A 4-byte random UID (byte 0 = ``08``): it changes on every tap, so it cannot authorise."""


class NotAUidError(CardIdError):
    """Installer input read without a format is not a card UID (see :func:`require_uid`)."""


class UnrepresentableError(CardIdError):
    """The card cannot be written in the requested format within 20 characters."""


# --------------------------------------------------------------------------------------------
# The card


@dataclass(frozen=True, slots=True, repr=False)
class CardId:
    """A card as the gateway knows it: either a UID or an opaque token.

    ``canonical`` is the uppercase hex of the UID (byte 0 first) or the token verbatim.
    Equality and hashing are case-insensitive for tokens (idTags are ``CiString``), and a token
    never equals a UID even when the texts agree.

    Build one with :meth:`from_uid`, :meth:`from_token`, :meth:`from_idtag` or
    :func:`parse_card_id`. The constructor validates its input.
    """

    uid: bytes | None = None
    token: str | None = field(default=None, compare=False)
    canonical: str = field(init=False, compare=False)
    key: str = field(init=False)
    """``canonical`` upper-cased: the case-insensitive comparison key."""

    def __post_init__(self) -> None:
        if (self.uid is None) == (self.token is None):
            raise CardIdError("a CardId is either a UID or a token: give exactly one of them")
        if self.uid is not None:
            uid = bytes(self.uid)
            _check_uid(uid)
            object.__setattr__(self, "uid", uid)
            canonical = uid.hex().upper()
        else:
            assert self.token is not None
            _check_token(self.token)
            canonical = self.token
        object.__setattr__(self, "canonical", canonical)
        object.__setattr__(self, "key", canonical.upper())

    @classmethod
    def from_uid(cls, uid: bytes | bytearray | Iterable[int]) -> CardId:
        """A card from its raw UID bytes, byte 0 first (as PC/SC ``FF CA 00 00 00`` returns)."""
        return cls(uid=bytes(uid))

    @classmethod
    def from_token(cls, text: str) -> CardId:
        """An opaque token (app token, virtual tag, eMAID...), kept verbatim.

        Use this for a value that looks like hex but is not a UID.
        """
        return cls(token=text)

    @classmethod
    def from_idtag(cls, text: str) -> CardId:
        """An idTag received over OCPP (e.g. the cloud's ``SendLocalList``), read literally.

        Plain hex of a 4-, 7- or 10-byte UID becomes a UID. Anything else is kept verbatim as
        a token: no cleanup, no guessing, because the sender chose that string. A random UID
        is returned as such. Check :attr:`is_random_uid` before trusting it.
        """
        if len(text) in (8, 14, 20) and _HEX_DIGITS.fullmatch(text):
            uid = bytes.fromhex(text)
            if uid[0] != CASCADE_TAG and any(uid):
                return cls(uid=uid)
        return cls(token=text)

    @property
    def is_uid(self) -> bool:
        return self.uid is not None

    @property
    def is_token(self) -> bool:
        return self.uid is None

    @property
    def is_random_uid(self) -> bool:
        """A 4-byte random ID (UID byte 0 = ``08``). It is regenerated on every power-up."""
        return self.uid is not None and len(self.uid) == 4 and self.uid[0] == RANDOM_UID_BYTE0

    def __str__(self) -> str:
        return self.canonical

    def __repr__(self) -> str:
        if self.uid is not None:
            return f"CardId({self.canonical!r})"
        return f"CardId(token={self.canonical!r})"


def _check_uid(uid: bytes) -> None:
    if len(uid) not in UID_SIZES:
        raise CardIdError(
            f"a card UID has 4, 7 or 10 bytes (ISO 14443-3), not {len(uid)}: {uid.hex().upper()}"
        )
    if not any(uid):
        raise CardIdError("a UID of all zeros is not a card: the reader returned no UID")
    if uid[0] == CASCADE_TAG:
        raise CardIdError(
            f"UID {uid.hex().upper()} starts with 88, the ISO 14443 cascade tag, which no UID "
            "may start with; it is a raw anticollision frame, not a UID"
        )


def _check_token(token: str) -> None:
    if not token:
        raise CardIdError("a token cannot be empty")
    if len(token) > IDTAG_MAX_LEN:
        raise CardIdError(
            f"{token!r} has {len(token)} characters; an idTag (OCPP CiString20) holds at most 20"
        )
    _check_printable(token)
    if token != token.strip():
        raise CardIdError(f"{token!r} starts or ends with a space; chargers would not send that")


def _check_printable(text: str) -> None:
    for pos, char in enumerate(text):
        if not " " <= char <= "~":
            raise CardIdError(
                f"{text!r}: character {char!r} at position {pos} is not printable ASCII, "
                "which an idTag (OCPP CiString20) must be"
            )


# --------------------------------------------------------------------------------------------
# Rendering: how a charger of a given format writes a card


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


# --------------------------------------------------------------------------------------------
# Parsing


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


# --------------------------------------------------------------------------------------------
# Matching presented idTags against known cards


@dataclass(frozen=True, slots=True)
class CardMatch:
    """One way a presented idTag matches a known card."""

    card: CardId
    fmt: IdTagFormat | None
    """The format under which the card renders as the presented tag. It is None for an opaque
    token, which matches verbatim and says nothing about the charger's format."""
    canonical: bool
    """The presented tag is the card's canonical form (case-insensitively)."""
    lossless: bool
    """The format keeps the whole UID. A lossy match pins only a prefix."""


@dataclass(frozen=True, slots=True)
class CardLookup:
    """The outcome of :meth:`CardIndex.lookup`.

    ``card`` is the card the tag resolves to, or None when nothing matched or when the best
    matches name different cards. ``ambiguous`` is set whenever more than one card matched,
    even if one of them was chosen. ``matches`` lists every match, best first.
    """

    presented: str
    requested: IdTagFormat
    matches: tuple[CardMatch, ...]
    card: CardId | None
    fmt: IdTagFormat | None
    """Format of the chosen match (None for a token or when unresolved)."""
    ambiguous: bool
    random_uid: bool
    """Nothing matched and the tag reads as a random UID: the card cannot be enrolled."""

    @property
    def found(self) -> bool:
        return self.card is not None

    @property
    def cards(self) -> tuple[CardId, ...]:
        """Distinct matched cards, best first."""
        return tuple(dict.fromkeys(m.card for m in self.matches))

    def describe(self) -> str:
        """One line for logs and the CLI."""

        def one(m: CardMatch) -> str:
            how = "verbatim" if m.fmt is None else f"as {m.fmt.value}"
            return f"{m.card.canonical} ({how})"

        if not self.matches:
            return f"{self.presented!r}: unknown" + (" (random UID)" if self.random_uid else "")
        if self.card is None:
            listed = ", ".join(one(m) for m in self.matches)
            return f"{self.presented!r}: ambiguous, unresolved: {listed}"
        chosen = next(m for m in self.matches if m.card == self.card)
        text = f"{self.presented!r}: {one(chosen)}"
        if self.ambiguous:
            others = ", ".join(one(m) for m in self.matches if m.card != self.card)
            text += f"; ambiguous, also {others}"
        return text


class CardIndex:
    """Every variant of every known card, for O(1) lookup of presented idTags.

    ``formats`` limits the variants indexed (default: all). A site whose chargers all use
    known formats can index just those to save memory. ``HEX`` (and so ``HEX_LOWER``) is
    always indexed. Random UIDs are refused: they cannot authorise.

    Not thread-safe; meant for one event loop.
    """

    __slots__ = ("_by_key", "_cards", "_formats", "_key_formats", "_renderers")

    def __init__(
        self, cards: Iterable[CardId] = (), *, formats: Iterable[IdTagFormat] | None = None
    ) -> None:
        chosen = set(FORMATS if formats is None else formats)
        if IdTagFormat.AUTO in chosen:
            raise ValueError("AUTO is not a format to index; leave formats=None for all")
        chosen |= _CANONICAL_FORMATS
        self._formats = tuple(f for f in FORMATS if f in chosen)
        self._key_formats = tuple(f for f in self._formats if f not in _CANONICAL_FORMATS)
        renderers = _key_renderers()
        self._renderers = tuple(renderers[f] for f in self._key_formats)
        self._by_key: dict[str, CardId | tuple[CardId, ...]] = {}
        self._cards: set[CardId] = set()
        for card in cards:
            self.add(card)

    @property
    def formats(self) -> tuple[IdTagFormat, ...]:
        return self._formats

    def __len__(self) -> int:
        return len(self._cards)

    def __iter__(self) -> Iterator[CardId]:
        return iter(self._cards)

    def __contains__(self, card: object) -> bool:
        return card in self._cards

    def _keys(self, card: CardId) -> set[str]:
        key = card.key
        uid = card.uid
        if uid is None:
            return {key}
        keys = {key}
        for render_key in self._renderers:
            text = render_key(uid, key)
            if text is not None:
                keys.add(text)
        return keys

    def add(self, card: CardId) -> bool:
        """Index ``card``. Returns False if it was already known."""
        if card.is_random_uid:
            raise RandomUidError(
                f"{card.canonical} is a random UID (4 bytes starting with 08) and cannot "
                "authorise: the card shows a different UID on every tap"
            )
        if card in self._cards:
            return False
        self._cards.add(card)
        by_key = self._by_key
        for key in self._keys(card):
            held = by_key.get(key)
            if held is None:
                by_key[key] = card
            elif isinstance(held, tuple):
                by_key[key] = (*held, card)
            else:
                by_key[key] = (held, card)
        return True

    def discard(self, card: CardId) -> bool:
        """Forget ``card``. Returns False if it was not known."""
        if card not in self._cards:
            return False
        self._cards.discard(card)
        by_key = self._by_key
        for key in self._keys(card):
            held = by_key.get(key)
            if held is None:
                continue
            if not isinstance(held, tuple):
                if held == card:
                    del by_key[key]
                continue
            rest = tuple(c for c in held if c != card)
            by_key[key] = rest[0] if len(rest) == 1 else rest
        return True

    def clashes(self, card: CardId) -> dict[str, tuple[CardId, ...]]:
        """Variants of ``card`` that other known cards share, keyed by the variant text.

        For enrolment: a clash means some charger format cannot tell the cards apart.
        """
        out: dict[str, tuple[CardId, ...]] = {}
        for key in self._keys(card):
            held = self._by_key.get(key)
            if held is None:
                continue
            others = tuple(c for c in _as_tuple(held) if c != card)
            if others:
                out[key] = others
        return out

    def lookup(self, presented: str, fmt: IdTagFormat = IdTagFormat.AUTO) -> CardLookup:
        """Find the card behind an idTag reported by a charger whose format is ``fmt``.

        ``AUTO`` tries every indexed format and reports in :attr:`CardLookup.fmt` which one
        matched. A concrete format matches that format and the canonical form (what a charger
        echoes after a RemoteStart). Opaque tokens match verbatim, case-insensitively. Never
        raises for odd input: it just does not match.
        """
        if fmt is not IdTagFormat.AUTO and fmt not in self._formats:
            raise ValueError(f"this index was built without {fmt.value}; add it to formats")
        text = presented.strip()
        key = text.upper()
        lowercase = text != key and text.lower() == text
        found: dict[tuple[CardId, IdTagFormat | None], tuple[int, CardMatch]] = {}

        self._probe(key, None, fmt, lowercase, found)
        if len(key) <= 64 and _SEPARATED_HEX.fullmatch(key):
            joined = "".join(g.rjust(2, "0") for g in _SEPARATORS.split(key))
            self._probe(joined, False, fmt, lowercase, found)
        if len(key) > 1 and key[0] == "0" and _DIGITS.fullmatch(key):
            self._probe(key.lstrip("0") or "0", True, fmt, lowercase, found)

        ranked = sorted(found.values(), key=lambda item: item[0])
        matches = tuple(m for _, m in ranked)
        distinct = {m.card for m in matches}
        card: CardId | None = None
        chosen_fmt: IdTagFormat | None = None
        if ranked:
            best = ranked[0][0] // 100
            top = [m for rank, m in ranked if rank // 100 == best]
            if len({m.card for m in top}) == 1:
                card, chosen_fmt = top[0].card, top[0].fmt
        random_uid = False
        if not matches:
            guess = _quiet_parse(text, fmt)
            random_uid = guess is not None and guess.is_random_uid
        return CardLookup(
            presented=presented,
            requested=fmt,
            matches=matches,
            card=card,
            fmt=chosen_fmt,
            ambiguous=len(distinct) > 1,
            random_uid=random_uid,
        )

    def _probe(
        self,
        key: str,
        decimal: bool | None,
        requested: IdTagFormat,
        lowercase: bool,
        found: dict[tuple[CardId, IdTagFormat | None], tuple[int, CardMatch]],
    ) -> None:
        """Record the matches of one normalised key.

        ``decimal`` restricts the key to decimal formats (True) or hex formats (False): a key
        with its separators or leading zeros removed is only meaningful for those.
        """
        held = self._by_key.get(key)
        if held is None:
            return
        for card in _as_tuple(held):
            if card.uid is None:
                if decimal is None and key == card.key:
                    found[card, None] = (0, CardMatch(card, None, canonical=True, lossless=True))
                continue
            if key == card.key and not decimal:
                label = IdTagFormat.HEX_LOWER if lowercase else IdTagFormat.HEX
                found[card, label] = (0, CardMatch(card, label, canonical=True, lossless=True))
                continue
            if requested is IdTagFormat.AUTO:
                candidates = self._key_formats
            elif requested in _CANONICAL_FORMATS:
                continue
            else:
                candidates = (requested,)
            for fmt in candidates:
                if decimal is not None and decimal != (fmt in _DECIMAL_FORMATS):
                    continue
                text = _render_uid(card.uid, fmt)
                if text is None or text.upper() != key:
                    continue
                lossless = is_lossless(card, fmt)
                tier = 0 if requested is not IdTagFormat.AUTO else (1 if lossless else 2)
                rank = tier * 100 + _RANK[fmt]
                previous = found.get((card, fmt))
                if previous is None or previous[0] > rank:
                    match = CardMatch(card, fmt, canonical=False, lossless=lossless)
                    found[card, fmt] = (rank, match)


def _as_tuple(held: CardId | tuple[CardId, ...]) -> tuple[CardId, ...]:
    return held if isinstance(held, tuple) else (held,)


def _quiet_parse(text: str, fmt: IdTagFormat) -> CardId | None:
    reading = IdTagFormat.HEX if fmt is IdTagFormat.AUTO else fmt
    try:
        return parse_card_id(text, reading, allow_random=True)
    except CardIdError:
        return None
