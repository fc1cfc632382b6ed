"""The two card lists the gateway authorises from: the installer's cards and the cloud's list.

Why two lists
-------------
*Installer cards* are the site's own: a caretaker enrols the caretaker's and the tenants' cards,
blocks a lost one, limits a private bay's card to its own charger. They work whatever the
cloud says and whether or not there is a cloud.

The *cloud list* is the mirror of what the operator's CSMS sends with ``SendLocalList``. The
gateway is every charger's CSMS, so it answers that call itself (the charger's real list is
the gateway's business, see :mod:`edgegw.auth.listpush`) and must keep the cloud's list exactly
as OCPP 1.6 §5.15 / §6.41 say a charge point keeps it, because the cloud reasons about it:

* ``Full`` replaces the list; every entry carries ``idTagInfo``; an empty or absent list clears
  it. ``listVersion`` is the version of the new list.
* ``Differential`` adds or updates entries that carry ``idTagInfo`` and deletes those that do
  not; an empty list changes nothing. ``listVersion`` is the version *after* applying, and a
  differential whose version is not above the current one is answered ``VersionMismatch``.
* idTags are unique within one request (compared case-insensitively, they are ``CiString20``),
  otherwise the request ``Failed``.

One addition, because the gateway is one list behind many charger connections: the cloud sends
the same update once per charger. A repeat of the update that made the current version (the
same version, nothing would change) is answered ``Accepted`` rather than ``VersionMismatch``;
otherwise the cloud would be pushed into a Full resend for every charger but the first.

A 2.0.1 cloud's ``SendLocalList`` (``versionNumber``, ``IdTokenType`` entries) is read into the
same mirror, on the same rules (:mod:`edgegw.auth.cloudlist201`): one cloud list, whatever
version the cloud speaks to each charger.

Random UIDs (4 bytes starting with ``08``) in a cloud list are skipped with a warning: such a
card shows a new UID on every tap and can never match.

Everything here is pure: no I/O, no clock. :mod:`edgegw.store.cards` persists it and
:mod:`edgegw.auth.authorizer` decides with it.

The code lives in :mod:`~edgegw.auth.cardinfo` (statuses, dates, ``IdTagInfo``, cards, list
entries), :mod:`~edgegw.auth.cardcsv` and :mod:`~edgegw.auth.cloudlist`; every name is
importable from here.
"""

from __future__ import annotations

from edgegw.auth.cardcsv import CSV_COLUMNS, cards_to_csv, parse_cards_csv
from edgegw.auth.cardinfo import (
    CARD_STATUSES,
    AuthStatus,
    Card,
    CardError,
    CsvImportError,
    DuplicateCardError,
    IdTagInfo,
    ListEntry,
    ListSource,
    ListStatus,
    UnknownCardError,
    format_datetime,
    format_expiry,
    normal_card_id,
    parse_datetime,
    parse_expiry,
)
from edgegw.auth.cloudlist import CloudEntry, CloudList, ListUpdate

__all__ = [
    "CARD_STATUSES",
    "CSV_COLUMNS",
    "AuthStatus",
    "Card",
    "CardError",
    "CloudEntry",
    "CloudList",
    "CsvImportError",
    "DuplicateCardError",
    "IdTagInfo",
    "ListEntry",
    "ListSource",
    "ListStatus",
    "ListUpdate",
    "UnknownCardError",
    "cards_to_csv",
    "format_datetime",
    "format_expiry",
    "normal_card_id",
    "parse_cards_csv",
    "parse_datetime",
    "parse_expiry",
]
