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

The code lives in :mod:`~edgegw.auth.cardid` (the card, the formats, the errors),
:mod:`~edgegw.auth.cardrender`, :mod:`~edgegw.auth.cardparse` and
:mod:`~edgegw.auth.cardindex`; every name is importable from here.
"""

from __future__ import annotations

from edgegw.auth.cardid import (
    CASCADE_TAG,
    FORMATS,
    IDTAG_MAX_LEN,
    RANDOM_UID_BYTE0,
    UID_SIZES,
    AmbiguousCardIdError,
    CardId,
    CardIdError,
    IdTagFormat,
    LostNibbleError,
    NotAUidError,
    PartialUidError,
    RandomUidError,
    UnrepresentableError,
)
from edgegw.auth.cardindex import CardIndex, CardLookup, CardMatch
from edgegw.auth.cardparse import interpretations, parse_card_id, require_uid
from edgegw.auth.cardrender import is_lossless, render, variants

__all__ = [
    "CASCADE_TAG",
    "FORMATS",
    "IDTAG_MAX_LEN",
    "RANDOM_UID_BYTE0",
    "UID_SIZES",
    "AmbiguousCardIdError",
    "CardId",
    "CardIdError",
    "CardIndex",
    "CardLookup",
    "CardMatch",
    "IdTagFormat",
    "LostNibbleError",
    "NotAUidError",
    "PartialUidError",
    "RandomUidError",
    "UnrepresentableError",
    "interpretations",
    "is_lossless",
    "parse_card_id",
    "render",
    "require_uid",
    "variants",
]
