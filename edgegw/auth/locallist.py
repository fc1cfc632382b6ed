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

Random UIDs (4 bytes starting with ``08``) in a cloud list are skipped with a warning: such a
card shows a new UID on every tap and can never match.

Everything here is pure: no I/O, no clock. :mod:`edgegw.store.cards` persists it and
:mod:`edgegw.auth.authorizer` decides with it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal

from edgegw.auth.idtags import (
    IDTAG_MAX_LEN,
    CardId,
    CardIdError,
    IdTagFormat,
    NotAUidError,
    parse_card_id,
    require_uid,
)

# --------------------------------------------------------------------------------------------
# OCPP vocabulary


class AuthStatus(StrEnum):
    """OCPP 1.6 ``AuthorizationStatus``."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"
    """The tag is valid but already in another transaction: meaningful only in a
    StartTransaction answer, so the lists and the cache treat it as ``Accepted``."""

    @property
    def valid(self) -> bool:
        return self in (AuthStatus.ACCEPTED, AuthStatus.CONCURRENT_TX)


CARD_STATUSES: Final = (
    AuthStatus.ACCEPTED,
    AuthStatus.BLOCKED,
    AuthStatus.EXPIRED,
    AuthStatus.INVALID,
)
"""The statuses an installer card can have (ConcurrentTx is not a property of a card)."""

ListStatus = Literal["Accepted", "Failed", "VersionMismatch"]
"""``SendLocalList.conf`` status values the mirror gives (it always supports lists)."""


class CardError(ValueError):
    """An installer card, a CSV file or a list entry is not acceptable; the message says why."""


class UnknownCardError(CardError, LookupError):
    """No installer card has that id."""


class DuplicateCardError(CardError):
    """An installer card with that id already exists."""


class CsvImportError(CardError):
    """A card CSV file has bad rows. ``errors`` holds ``(line number, message)`` for each;
    nothing of the file was imported."""

    def __init__(self, errors: Sequence[tuple[int, str]]) -> None:
        self.errors = tuple(errors)
        shown = "; ".join(f"line {line}: {message}" for line, message in self.errors[:20])
        more = f" (and {len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} bad row(s), nothing imported: {shown}{more}")


# --------------------------------------------------------------------------------------------
# Times


def parse_datetime(text: str) -> datetime:
    """An OCPP ``dateTime`` (ISO 8601) as an aware UTC datetime. No offset means UTC.

    Raises ValueError with the text when it is not a date and time.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_expiry(text: str) -> datetime:
    """An expiry typed by an installer: a date and time, or a date, valid through that day (UTC).

    ``2026-12-31`` therefore expires at ``2027-01-01T00:00:00Z``.
    """
    shown = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", shown):
        try:
            day = date.fromisoformat(shown)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date") from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return parse_datetime(shown)


def format_expiry(value: datetime) -> str:
    """An installer card's expiry as an installer writes it: the reverse of :func:`parse_expiry`.

    An expiry at midnight UTC is the end of the day before: ``2027-12-31`` (valid through that
    day) is stored as ``2028-01-01T00:00:00Z`` and shown, listed and exported as ``2027-12-31``
    again, so a file exported and imported again (through a spreadsheet that keeps only the
    date, too) keeps the same last day. Any other expiry is an OCPP ``dateTime``.
    """
    utc = value.astimezone(UTC)
    if (utc.hour, utc.minute, utc.second, utc.microsecond) == (0, 0, 0, 0):
        return (utc.date() - timedelta(days=1)).isoformat()
    return format_datetime(utc)


def format_datetime(value: datetime) -> str:
    """OCPP ``dateTime``: UTC with a ``Z``, seconds (milliseconds when there are any)."""
    spec = "milliseconds" if value.microsecond else "seconds"
    return value.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# IdTagInfo


def _check_parent(parent: str) -> str:
    if not parent or len(parent) > IDTAG_MAX_LEN or not all(" " <= c <= "~" for c in parent):
        raise ValueError(
            f"parent id {parent!r} must be 1 to 20 printable ASCII characters (OCPP IdToken)"
        )
    return parent


@dataclass(frozen=True, slots=True)
class IdTagInfo:
    """OCPP ``IdTagInfo``: a status, an optional expiry and an optional parent id."""

    status: AuthStatus
    expiry: datetime | None = None
    parent_id: str | None = None

    @classmethod
    def from_ocpp(cls, data: object) -> IdTagInfo:
        """Read an ``idTagInfo`` object as the cloud sent it; ValueError says what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"idTagInfo must be an object, not {type(data).__name__}")
        raw_status = data.get("status")
        try:
            status = AuthStatus(str(raw_status))
        except ValueError:
            allowed = ", ".join(s.value for s in AuthStatus)
            raise ValueError(f"idTagInfo status {raw_status!r} is not one of {allowed}") from None
        expiry = data.get("expiryDate")
        if expiry is not None and not isinstance(expiry, str):
            raise ValueError(f"idTagInfo expiryDate must be a string, not {expiry!r}")
        parent = data.get("parentIdTag")
        if parent is not None and not isinstance(parent, str):
            raise ValueError(f"idTagInfo parentIdTag must be a string, not {parent!r}")
        return cls(
            status=status,
            expiry=None if expiry is None else parse_datetime(expiry),
            parent_id=None if parent is None else _check_parent(parent),
        )

    def to_ocpp(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.value}
        if self.expiry is not None:
            out["expiryDate"] = format_datetime(self.expiry)
        if self.parent_id is not None:
            out["parentIdTag"] = self.parent_id
        return out

    def expired(self, now: float) -> bool:
        return self.expiry is not None and self.expiry.timestamp() <= now


# --------------------------------------------------------------------------------------------
# Installer cards


def normal_card_id(card: CardId) -> CardId:
    """The id as it reads back from storage (see :class:`Card`)."""
    if card.is_token:
        return CardId.from_idtag(card.canonical)
    return card


@dataclass(frozen=True, slots=True)
class Card:
    """A card enrolled by the installer.

    ``chargers`` limits the card to those charger ids (a private bay's card works only on its
    own charger); None means every charger. ``parent_id`` groups cards (OCPP parentIdTag: any
    card of a group may stop another's session). A card stored as a token that is plain hex of
    a 4-, 7- or 10-byte UID becomes that UID, so the card is the same before and after a restart.
    """

    id: CardId
    owner: str = ""
    label: str = ""
    status: AuthStatus = AuthStatus.ACCEPTED
    expiry: datetime | None = None
    chargers: frozenset[str] | None = None
    parent_id: str | None = None
    created_at: float = field(default=0.0, compare=False)
    updated_at: float = field(default=0.0, compare=False)

    def __post_init__(self) -> None:
        card_id = normal_card_id(self.id)
        if card_id.is_random_uid:
            raise CardError(
                f"{card_id.canonical} is a random UID (4 bytes starting with 08): the card shows "
                "a new UID on every tap, so it cannot be enrolled"
            )
        object.__setattr__(self, "id", card_id)
        try:
            status = AuthStatus(self.status)
        except ValueError:
            raise CardError(f"status {self.status!r} is not one of {_CARD_STATUS_LIST}") from None
        if status not in CARD_STATUSES:
            raise CardError(f"status {status.value!r} is not one of {_CARD_STATUS_LIST}")
        object.__setattr__(self, "status", status)
        if self.expiry is not None:
            expiry = self.expiry
            if expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=UTC)
            object.__setattr__(self, "expiry", expiry.astimezone(UTC))
        if self.chargers is not None:
            chargers = frozenset(self.chargers)
            if not chargers:
                raise CardError(
                    f"card {card_id.canonical} would be allowed on no charger; leave the charger "
                    "list empty for all chargers, or block the card"
                )
            object.__setattr__(self, "chargers", chargers)
        if self.parent_id is not None:
            try:
                _check_parent(self.parent_id)
            except ValueError as exc:
                raise CardError(str(exc)) from None

    @property
    def key(self) -> str:
        return self.id.key

    def allows(self, charger_id: str) -> bool:
        return self.chargers is None or charger_id in self.chargers

    def id_tag_info(self) -> IdTagInfo:
        return IdTagInfo(self.status, self.expiry, self.parent_id)

    def describe(self) -> str:
        """``E43AC9D2 (Alice, bay 12)`` for logs and decisions."""
        who = ", ".join(x for x in (self.owner, self.label) if x)
        return f"{self.id.canonical} ({who})" if who else self.id.canonical


_CARD_STATUS_LIST: Final = ", ".join(s.value for s in CARD_STATUSES)


# --------------------------------------------------------------------------------------------
# Card CSV


CSV_COLUMNS: Final = ("id", "format", "owner", "label", "status", "expiry", "chargers", "parent")
"""Columns of the card CSV file. Only ``id`` is required.

``format`` says how ``id`` is written (an idTag format such as ``dec_le`` for the number printed
on a card, ``token`` for a value that is not a card UID; empty reads hex, with or without
separators). ``status`` is Accepted (default), Blocked, Expired or Invalid. ``expiry`` is an ISO
date (valid through that day, UTC) or date and time. ``chargers`` lists the charger ids the card
works on, separated by spaces (empty: all chargers). ``parent`` is the OCPP parentIdTag.
"""

_COLUMN_ALIASES: Final = MappingProxyType(
    {"id_tag": "id", "idtag": "id", "uid": "id", "card": "id"}
)
_CHARGER_SPLIT: Final = re.compile(r"[\s,;]+")


def parse_cards_csv(text: str, *, now: float) -> list[Card]:
    """Read a card CSV file (see :data:`CSV_COLUMNS`). All or nothing.

    ``now`` stamps the cards' times. The delimiter is ``,`` or ``;`` (as spreadsheets in many
    locales write it), a leading byte-order mark is ignored, header names are case-insensitive.
    Raises :class:`CsvImportError` listing every bad row with its line number.
    """
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    errors: list[tuple[int, str]] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CsvImportError([(1, f"unreadable header: {exc}")]) from None
    if header is None or not any(h.strip() for h in header):
        raise CsvImportError([(1, f"empty file; expected a header like {','.join(CSV_COLUMNS)}")])
    columns = [_COLUMN_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    unknown = [h for h, c in zip(header, columns, strict=True) if c not in CSV_COLUMNS]
    if unknown:
        errors.append(
            (1, f"unknown column(s) {', '.join(map(repr, unknown))}; allowed: {CSV_COLUMNS}")
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        errors.append((1, f"column(s) given twice: {', '.join(repeated)}"))
    if "id" not in columns:
        errors.append((1, "no 'id' column"))
    if errors:
        raise CsvImportError(errors)

    cards: list[Card] = []
    seen: dict[str, int] = {}
    line = reader.line_num
    rows: Iterator[list[str]] = reader
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append((reader.line_num, f"unreadable CSV: {exc}"))
            break
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            errors.append((start, f"{len(row)} fields, the header has {len(columns)}"))
            continue
        values = {c: v.strip() for c, v in zip(columns, row, strict=True)}
        try:
            card = _card_from_row(values, now)
        except (CardError, ValueError) as exc:
            errors.append((start, str(exc)))
            continue
        if card.key in seen:
            errors.append((start, f"card {card.id.canonical} is already on line {seen[card.key]}"))
            continue
        seen[card.key] = start
        cards.append(card)
    if errors:
        raise CsvImportError(errors)
    return cards


def _card_from_row(values: Mapping[str, str], now: float) -> Card:
    raw_id = values.get("id", "")
    if not raw_id:
        raise CardError("the id is empty")
    fmt_text = values.get("format", "").lower()
    if fmt_text == "token":
        card_id = CardId.from_token(raw_id)
    else:
        try:
            fmt = IdTagFormat(fmt_text or "auto")
        except ValueError:
            allowed = ", ".join(["token", *(f.value for f in IdTagFormat)])
            raise CardError(f"format {fmt_text!r} is not one of {allowed}") from None
        try:
            card_id = parse_card_id(raw_id, fmt)
            if fmt is IdTagFormat.AUTO:
                card_id = require_uid(card_id, raw_id)
        except NotAUidError as exc:
            raise CardError(
                f"id {raw_id!r}: {exc}; for a token (not a card UID) write token in the format "
                "column"
            ) from None
        except CardIdError as exc:
            raise CardError(f"id {raw_id!r}: {exc}") from None
    status_text = values.get("status", "")
    status = AuthStatus.ACCEPTED
    if status_text:
        matched = [s for s in CARD_STATUSES if s.value.lower() == status_text.lower()]
        if not matched:
            raise CardError(f"status {status_text!r} is not one of {_CARD_STATUS_LIST}")
        status = matched[0]
    expiry_text = values.get("expiry", "")
    chargers_text = values.get("chargers", "")
    chargers = frozenset(c for c in _CHARGER_SPLIT.split(chargers_text) if c)
    return Card(
        id=card_id,
        owner=values.get("owner", ""),
        label=values.get("label", ""),
        status=status,
        expiry=_expiry(expiry_text) if expiry_text else None,
        chargers=chargers or None,
        parent_id=values.get("parent") or None,
        created_at=now,
        updated_at=now,
    )


def _expiry(text: str) -> datetime:
    try:
        return parse_expiry(text)
    except ValueError as exc:
        raise CardError(f"expiry: {exc}") from None


def cards_to_csv(cards: Iterable[Card]) -> str:
    """The cards as a CSV file that :func:`parse_cards_csv` reads back to the same cards."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for card in sorted(cards, key=lambda c: c.key):
        writer.writerow(
            [
                card.id.canonical,
                "token" if card.id.is_token else "",
                card.owner,
                card.label,
                card.status.value,
                "" if card.expiry is None else format_expiry(card.expiry),
                " ".join(sorted(card.chargers or ())),
                card.parent_id or "",
            ]
        )
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# The cloud's list


@dataclass(frozen=True, slots=True)
class CloudEntry:
    """One entry of the cloud's list: the idTag as the cloud wrote it, and its card."""

    id_tag: str
    card: CardId
    info: IdTagInfo

    @property
    def key(self) -> str:
        return self.card.key


@dataclass(frozen=True, slots=True)
class ListUpdate:
    """The outcome of :meth:`CloudList.plan` for one ``SendLocalList`` request.

    For a Full update ``upserts`` is the whole new list and ``deletes`` every old entry that
    leaves it. For a Differential, ``upserts`` are new or changed entries and ``deletes`` the
    old entries removed or replaced (an idTag re-sent in another letter case replaces the old
    spelling). ``changed`` says whether the entries (not just the version) change.
    """

    status: ListStatus
    version: int
    full: bool
    reason: str = ""
    upserts: tuple[CloudEntry, ...] = ()
    deletes: tuple[CloudEntry, ...] = ()
    skipped: tuple[str, ...] = ()
    """idTags left out because they are random UIDs."""
    changed: bool = False

    def answer(self) -> dict[str, str]:
        """The ``SendLocalList.conf`` payload."""
        return {"status": self.status}


class CloudList:
    """The mirror of the cloud's local authorisation list, keyed case-insensitively.

    Change it only through :meth:`plan` then :meth:`commit`, so that the caller can persist the
    update between the two and the mirror never runs ahead of the disk.
    """

    __slots__ = ("_entries", "_version")

    def __init__(self, entries: Iterable[CloudEntry] = (), version: int = 0) -> None:
        self._entries: dict[str, CloudEntry] = {e.key: e for e in entries}
        self._version = version

    @property
    def version(self) -> int:
        """``GetLocalListVersion``: 0 before the first update (an empty list)."""
        return self._version

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CloudEntry]:
        return iter(self._entries.values())

    def get(self, key: str) -> CloudEntry | None:
        """The entry for a card key (:attr:`CardId.key`)."""
        return self._entries.get(key)

    def plan(self, payload: Mapping[str, Any]) -> ListUpdate:
        """What ``SendLocalList`` ``payload`` would do, without doing it."""
        try:
            version, full, requested = _read_request(payload)
        except ValueError as exc:
            return ListUpdate("Failed", self._version, full=False, reason=str(exc))
        skipped = tuple(e.id_tag for e in requested if e.card.is_random_uid)
        wanted = [e for e in requested if not e.card.is_random_uid]
        if full:
            missing = [e.id_tag for e in requested if e.info is None]
            if missing:
                return ListUpdate(
                    "Failed",
                    self._version,
                    full=True,
                    reason=f"a Full list needs idTagInfo on every entry; missing for {missing[:5]}",
                )
            return self._plan_full(version, wanted, skipped)
        return self._plan_differential(version, wanted, skipped)

    def _plan_full(
        self, version: int, wanted: list[_Requested], skipped: tuple[str, ...]
    ) -> ListUpdate:
        new = {e.card.key: CloudEntry(e.id_tag, e.card, e.info) for e in wanted if e.info}
        deletes = tuple(old for key, old in self._entries.items() if new.get(key) != old)
        changed = new != self._entries
        return ListUpdate(
            "Accepted",
            version,
            full=True,
            upserts=tuple(new.values()),
            deletes=deletes,
            skipped=skipped,
            changed=changed,
        )

    def _plan_differential(
        self, version: int, wanted: list[_Requested], skipped: tuple[str, ...]
    ) -> ListUpdate:
        upserts: list[CloudEntry] = []
        deletes: list[CloudEntry] = []
        for item in wanted:
            old = self._entries.get(item.card.key)
            if item.info is None:
                if old is not None:
                    deletes.append(old)
                continue
            entry = CloudEntry(item.id_tag, item.card, item.info)
            if entry == old:
                continue
            if old is not None:
                deletes.append(old)
            upserts.append(entry)
        changed = bool(upserts or deletes)
        if version <= self._version and not (version == self._version and not changed):
            return ListUpdate(
                "VersionMismatch",
                self._version,
                full=False,
                reason=f"differential version {version} is not above the current {self._version}",
            )
        return ListUpdate(
            "Accepted",
            version,
            full=False,
            upserts=tuple(upserts),
            deletes=tuple(deletes),
            skipped=skipped,
            changed=changed,
        )

    def commit(self, update: ListUpdate) -> None:
        """Apply an ``Accepted`` update from :meth:`plan` (others change nothing)."""
        if update.status != "Accepted":
            return
        if update.full:
            self._entries = {e.key: e for e in update.upserts}
        else:
            for old in update.deletes:
                self._entries.pop(old.key, None)
            for entry in update.upserts:
                self._entries[entry.key] = entry
        self._version = update.version


@dataclass(frozen=True, slots=True)
class _Requested:
    id_tag: str
    card: CardId
    info: IdTagInfo | None


def _read_request(payload: Mapping[str, Any]) -> tuple[int, bool, list[_Requested]]:
    """Validate a SendLocalList payload; ValueError names the first problem."""
    version = payload.get("listVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"listVersion must be an integer, not {version!r}")
    if version < 0:
        raise ValueError(f"listVersion {version} is negative (-1 only means 'no list support')")
    update_type = payload.get("updateType")
    if update_type not in ("Full", "Differential"):
        raise ValueError(f"updateType must be Full or Differential, not {update_type!r}")
    raw = payload.get("localAuthorizationList") or []
    if not isinstance(raw, list):
        raise ValueError("localAuthorizationList must be an array")
    seen: set[str] = set()
    out: list[_Requested] = []
    for position, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ValueError(f"entry {position} is not an object")
        id_tag = item.get("idTag")
        if not isinstance(id_tag, str):
            raise ValueError(f"entry {position} has no idTag string")
        try:
            card = CardId.from_idtag(id_tag)
        except CardIdError as exc:
            raise ValueError(f"entry {position}: idTag {id_tag!r}: {exc}") from None
        if card.key in seen:
            raise ValueError(f"idTag {id_tag!r} appears twice; idTags must be unique")
        seen.add(card.key)
        info_raw = item.get("idTagInfo")
        try:
            info = None if info_raw is None else IdTagInfo.from_ocpp(info_raw)
        except ValueError as exc:
            raise ValueError(f"entry {position} ({id_tag!r}): {exc}") from None
        out.append(_Requested(id_tag, card, info))
    return version, update_type == "Full", out


# --------------------------------------------------------------------------------------------
# What a charger's own list should hold


class ListSource(StrEnum):
    INSTALLER = "installer"
    CLOUD = "cloud"


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One card for a charger's local list, before it is written in the charger's format."""

    card: CardId
    info: IdTagInfo
    source: ListSource
