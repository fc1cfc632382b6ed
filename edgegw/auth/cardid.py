"""The canonical card, :class:`CardId`, the formats a charger writes a card in,
:class:`IdTagFormat`, and the errors that say why a text is not a card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

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


_HEX_DIGITS: Final = re.compile(r"[0-9A-Fa-f]+")


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
