"""A charging session as the site sees it, and the times it is read and priced over.

The rows of ``transactions`` become :class:`Session` values (:mod:`edgegw.store.sessions`
reads them); :class:`SessionFilter` says which ones to show, :class:`Month` which month a
report covers. Times are the charger's own timestamps, read as UTC (see
:mod:`edgegw.store.sessions` for the whole story).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any, Final

from edgegw.auth.idtags import CardId
from edgegw.auth.locallist import Card
from edgegw.store.tariffs import checked_time

_MONTH: Final = re.compile(r"(\d{4})-(\d{2})")


class SessionState(StrEnum):
    FINISHED = "finished"
    OPEN = "open"
    UNCLOSED = "unclosed"
    """No StopTransaction, but the connector has started another session since."""


class SessionMode(StrEnum):
    """Who gave the session its transaction id."""

    STANDALONE = "standalone"
    CLOUD = "cloud"
    OFFLINE = "offline"
    """Started while the cloud was unreachable: a local id, mapped to the cloud's later."""


def parse_time(text: str) -> float:
    """Unix seconds of an ISO-8601 date or date-time; without a zone it is UTC.

    Raises ``ValueError`` with a message for the person who typed it.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or time; use ISO 8601, e.g. 2026-01-31 or 2026-01-31T18:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso_utc(ts: float) -> str:
    """``2026-01-31T18:00:00Z``: ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def owner_key(owner: str) -> str:
    """How owners compare when filtering: whole names, any case, surrounding blanks ignored.

    ``""`` is no owner. Case folding, not ``lower()``: ``STRASSE`` matches ``Straße``.
    """
    return owner.strip().casefold()


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month, ``YYYY-MM``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = _MONTH.fullmatch(text.strip())
        if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
            raise ValueError(f"{text!r} is not a month; write it as YYYY-MM, e.g. 2026-01")
        return cls(int(match.group(1)), int(match.group(2)))

    def bounds(self, tz: tzinfo = UTC) -> tuple[float, float]:
        """Unix seconds of the month's first instant and of the next month's, in ``tz``."""
        start = datetime(self.year, self.month, 1, tzinfo=tz)
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return start.timestamp(), datetime(year, month, 1, tzinfo=tz).timestamp()

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class Session:
    """One charging session (one row of ``transactions``), with its card resolved."""

    id: int
    charger_id: str
    connector_id: int
    transaction_id: int | str | None
    """The id the charger uses (for a 1.6 session started offline, the gateway's local id; an
    OCPP 2.x charger's own string id)."""
    cloud_transaction_id: int | str | None
    """The cloud's id: the same for a relayed session, the mapped one for a 1.6 offline start
    (None until the cloud accepted it), None standalone; a 2.x session's is the charger's."""
    mode: SessionMode
    id_tag: str
    card: Card | None
    state: SessionState
    started_ts: float
    stopped_ts: float | None
    meter_start: int
    meter_stop: int | None
    stop_reason: str | None
    tariff: str | None = None
    cost: float | None = None
    """Unrounded; None when no tariff applies or the session has not finished."""
    card_groups: tuple[str, ...] | None = None
    """The card's groups when the session was priced at its stop (None: not stored)."""
    gateway_times: tuple[str, ...] = ()
    """Which of ``start`` and ``stop`` the cost was worked out with the gateway's time of
    (the charger's was far off it)."""

    @property
    def energy_wh(self) -> int | None:
        if self.meter_stop is None:
            return None
        return max(0, self.meter_stop - self.meter_start)

    @property
    def meter_backwards(self) -> bool:
        return self.meter_stop is not None and self.meter_stop < self.meter_start

    @property
    def duration_s(self) -> float | None:
        if self.state is not SessionState.FINISHED or self.stopped_ts is None:
            return None
        return max(0.0, self.stopped_ts - self.started_ts)

    @property
    def ended_ts(self) -> float:
        """When it ended, as well as known: the stop, else the start (unclosed, bad clock)."""
        return self.started_ts if self.stopped_ts is None else self.stopped_ts

    def to_json(self) -> dict[str, Any]:
        energy = self.energy_wh
        duration = self.duration_s
        return {
            "id": self.id,
            "charger": self.charger_id,
            "connector": self.connector_id,
            "transaction_id": self.transaction_id,
            "cloud_transaction_id": self.cloud_transaction_id,
            "mode": self.mode.value,
            "id_tag": self.id_tag,
            "card": None if self.card is None else self.card.id.canonical,
            "owner": None if self.card is None else self.card.owner,
            "label": None if self.card is None else self.card.label,
            "state": self.state.value,
            "started_at": iso_utc(self.started_ts),
            "started_ts": self.started_ts,
            "stopped_at": None if self.stopped_ts is None else iso_utc(self.stopped_ts),
            "stopped_ts": self.stopped_ts,
            "duration_s": None if duration is None else round(duration, 1),
            "meter_start_wh": self.meter_start,
            "meter_stop_wh": self.meter_stop,
            "energy_wh": energy,
            "energy_kwh": None if energy is None else round(energy / 1000, 3),
            "meter_backwards": self.meter_backwards,
            "stop_reason": self.stop_reason,
            **(
                {}
                if self.tariff is None
                else {
                    "tariff": self.tariff,
                    "cost": None if self.cost is None else cents(self.cost),
                    "cost_times": cost_times(self.gateway_times),
                }
            ),
        }


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Which sessions to show. ``since``/``until`` (Unix seconds) keep the sessions that were
    going on at some time in ``[since, until)``: started before ``until`` and ended (or still
    open) at or after ``since``. ``card`` keeps the sessions of that card, whatever format the
    charger reported it in. Filters combine (all must match)."""

    since: float | None = None
    until: float | None = None
    card: CardId | None = None
    charger: str | None = None
    owner: str | None = None
    """Keep the sessions of the cards this owner holds (compared by :func:`owner_key`)."""
    no_owner: bool = False
    """Keep the sessions of unknown cards and of cards enrolled without an owner: the
    report's owner-less group. Its own flag rather than ``owner=""``, so that an empty
    variable in a script is refused instead of quietly listing the unattributed sessions."""

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(
                f"since ({iso_utc(self.since)}) is after until ({iso_utc(self.until)})"
            )
        if self.owner is not None and not owner_key(self.owner):
            raise ValueError(
                "the owner is empty: give a name, or ask for no owner to get the sessions "
                "of unknown cards and of cards without an owner"
            )
        if self.owner is not None and self.no_owner:
            raise ValueError("an owner and no owner together match nothing: ask for one")


def priced_times(
    started_at: str, start_recorded: float, stopped_at: str | None, stop_recorded: float | None
) -> tuple[float, float, tuple[str, ...]]:
    """The start and end a session is priced over, and which of them are the gateway's.

    The charger's timestamps, unless one does not parse or is more than
    :data:`~edgegw.store.tariffs.CLOCK_TOLERANCE` away from when the gateway recorded that
    message (``stop_recorded`` None: not known, before schema 4; the charger's stop is kept).
    An end before the start is the start (no duration).
    """
    start, start_fixed = checked_time(charger_time(started_at), start_recorded)
    assert start is not None
    end, end_fixed = checked_time(charger_time(stopped_at), stop_recorded)
    if end is None:
        end = start
    fixed = (("start",) if start_fixed else ()) + (("stop",) if end_fixed else ())
    return start, max(start, end), fixed


def cost_times(gateway_times: Sequence[str]) -> str:
    """How a session's cost was timed, for reports: ``charger`` or ``gateway: start, stop``."""
    return "gateway: " + ", ".join(gateway_times) if gateway_times else "charger"


def card_groups_of(text: str | None) -> tuple[str, ...]:
    """A session's card groups as stored with its price (a JSON list; unreadable: none)."""
    try:
        names = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple(str(n) for n in names) if isinstance(names, list) else ()


def cents(amount: float) -> float:
    """An amount rounded to cents for display (``-0.0`` shown as ``0.0``)."""
    return round(amount + 0.0, 2)


def julian_day(ts: float) -> float:
    """SQLite's ``julianday()`` of Unix seconds ``ts``."""
    return ts / 86400.0 + 2440587.5


def charger_time(text: str | None) -> float | None:
    """A charger's timestamp as Unix seconds; None when it does not parse."""
    if text is None:
        return None
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        return None
