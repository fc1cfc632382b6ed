"""The OCPP vocabulary of card lists (:class:`AuthStatus`, :class:`IdTagInfo`, dates as OCPP
writes them), an installer's :class:`Card` and an entry of a charger's effective list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal

from edgegw.auth.idtags import IDTAG_MAX_LEN, CardId


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


class ListSource(StrEnum):
    INSTALLER = "installer"
    CLOUD = "cloud"


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One card for a charger's local list, before it is written in the charger's format."""

    card: CardId
    info: IdTagInfo
    source: ListSource
