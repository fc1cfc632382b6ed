"""Charging sessions as the site sees them: lists, exports and the monthly billing report.

Reads the ``transactions`` table the :class:`~edgegw.store.store.Store` writes. One row is one
session, whoever answered its StartTransaction:

* standalone (no cloud): the gateway numbers sessions per charger (``origin = 'gateway'``);
* relayed while the cloud answered: the row carries the cloud's transaction id
  (``origin = 'cloud'``);
* started while the cloud was unreachable: the row carries the gateway's local id
  (>= :data:`~edgegw.store.outbox.LOCAL_ID_BASE`, the id the charger keeps using) and
  ``transaction_ids`` maps it to the cloud's id once the outbox delivered the start. The row is
  never duplicated by the replay; :attr:`Session.cloud_transaction_id` shows the mapped id.

Times are the charger's own timestamps (what the resident's car saw), read as UTC; a timestamp
that does not parse falls back to when the gateway recorded the start. The energy of a session
is ``meterStop - meterStart`` (Wh); a meter that went backwards (seen on real chargers by 1 Wh)
counts as 0 and is flagged.

A session whose StopTransaction never came but after which the same connector started another
is *unclosed*: it ended at an unknown time with unknown energy (chargers do this after a
refused start or a power cut). It is never shown as still open, and never billed.

The monthly report counts a finished session in the month it *ended*: the energy is known then,
and a month's report no longer changes once the month is over. Sessions still open at the end
of the month are listed apart and counted in the month they end.

Idtags are matched to the installer's cards the way the card authority does for that charger
(its configured or detected idTag format), so a card reported as decimal by one charger and as
hex by another is one card with one owner. The owner is the card's owner *now*: a card given to
someone else moves its past sessions with it, in lists and in reports alike.

With ``[[tariffs]]`` configured (:mod:`edgegw.store.tariffs`), every finished session gets its
cost, by the tariff of its card's groups or its charger's groups (the groups of
:mod:`edgegw.auth.access`), and the report adds costs up per card, per owner and per card
group, in the tariffs' currency. The daemon prices a session when it records its stop and
stores the tariff, the cost and the card's groups with it: what is shown is that price, so a
tariff or a group changed in July does not re-price June. A session without a stored price
(stopped before schema 4, or by a daemon without a pricer) is priced when shown, with the
tariffs and groups configured then. The times priced are checked against when the gateway
recorded each message (:func:`~edgegw.store.tariffs.checked_time`); ``cost_times`` says when
the gateway's were used (a charger clock far off, e.g. 1970 after a power loss).

Queries run on their own read-only connection (:func:`open_read_only`): a year of sessions is
read without holding up the daemon's writer, and the CLI can read the file while the daemon is
stopped.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import math
import re
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import aiosqlite

from edgegw.auth.access import Access
from edgegw.auth.chargerformats import configured_formats
from edgegw.auth.idtags import CardId, CardIndex, IdTagFormat, parse_card_id
from edgegw.auth.locallist import Card, normal_card_id
from edgegw.config import Config, TariffConfig
from edgegw.store.cards import CardStore
from edgegw.store.db import Database, StoreError
from edgegw.store.schema import MIGRATIONS
from edgegw.store.tariffs import Priced, Tariffs, checked_time, price_session

SCHEMA_NEEDED: Final = 4
"""The schema version that has everything read here (``transaction_ids``, ``cards``, the
stored price of a session)."""

_CHUNK: Final = 500  # rows read per query while filtering in Python
_MONTH = re.compile(r"(\d{4})-(\d{2})")


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


# ------------------------------------------------------------------------------- times


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


def _julian_day(ts: float) -> float:
    """SQLite's ``julianday()`` of Unix seconds ``ts``."""
    return ts / 86400.0 + 2440587.5


def _charger_time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        return None


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


# ------------------------------------------------------------------------------- cards


class CardResolver:
    """Which installer card an idTag reported by a charger is, as the card authority sees it.

    ``charger_format`` gives a charger's configured, else detected, idTag format
    (:meth:`Authorizer.charger_format <edgegw.auth.authorizer.Authorizer.charger_format>`);
    ``configured`` the formats set in the configuration. Like the authority, a charger set to
    ``auto`` whose detected format does not match is looked up in every format.
    """

    def __init__(
        self,
        cards: Iterable[Card],
        charger_format: Callable[[str], IdTagFormat],
        configured: Mapping[str, IdTagFormat],
        *,
        access: Access | None = None,
        tariffs: Sequence[TariffConfig] = (),
    ) -> None:
        self.access = access or Access()
        self.tariffs = Tariffs.from_config(tariffs)  # TariffError: mixed currencies
        self._cards = {card.key: card for card in cards}
        self._index = CardIndex(card.id for card in self._cards.values())
        self._format = charger_format
        self._configured = dict(configured)
        self._memo: dict[tuple[str, str], Card | None] = {}
        self._owners: dict[str, str] | None = None  # owner_key -> an owner as written

    @classmethod
    async def load(cls, conn: aiosqlite.Connection, config: Config) -> CardResolver:
        """From the database alone (the daemon is stopped): cards and detected formats."""
        store = CardStore(Database(conn, config.store.path))
        cards = await store.load_cards()
        detected = await store.detected_formats()
        access = await store.load_access()
        configured = configured_formats(config)

        def charger_format(charger_id: str) -> IdTagFormat:
            fmt = configured.get(charger_id, IdTagFormat.AUTO)
            if fmt is IdTagFormat.AUTO and charger_id in detected:
                return detected[charger_id].fmt
            return fmt

        return cls(cards, charger_format, configured, access=access, tariffs=config.tariffs)

    def price(
        self, charger_id: str, card: Card | None, start: float, end: float, energy_wh: int
    ) -> Priced | None:
        """The tariff and the (unrounded) cost of a finished session, today; None without."""
        key = None if card is None else card.key
        return price_session(
            self.tariffs, self.access, charger_id, key, start=start, end=end, energy_wh=energy_wh
        )

    def format_of(self, charger_id: str) -> IdTagFormat:
        return self._format(charger_id)

    def _auto(self, charger_id: str) -> bool:
        return self._configured.get(charger_id, IdTagFormat.AUTO) is IdTagFormat.AUTO

    def resolve(self, charger_id: str, id_tag: str) -> Card | None:
        """The installer card behind ``id_tag`` at ``charger_id``; None if unknown or ambiguous."""
        memo_key = (charger_id, id_tag)
        if memo_key in self._memo:
            return self._memo[memo_key]
        fmt = self.format_of(charger_id)
        found = self._index.lookup(id_tag, fmt)
        if self._auto(charger_id) and fmt is not IdTagFormat.AUTO and not found.matches:
            found = self._index.lookup(id_tag, IdTagFormat.AUTO)  # the detection may be wrong
        card = None if found.card is None else self._cards.get(found.card.key)
        self._memo[memo_key] = card
        return card

    def check_owner(self, owner: str) -> None:
        """Refuse an owner no enrolled card has (with the closest names), else do nothing.

        Sessions are matched to owners through today's cards, so such an owner can match no
        session at all: an empty list would pass a typo off as "did not charge", and an empty
        export would make an empty bill.
        """
        if self._owners is None:
            self._owners = {}
            for card in sorted(self._cards.values(), key=lambda c: c.owner):
                if owner_key(card.owner):
                    self._owners.setdefault(owner_key(card.owner), card.owner.strip())
        wanted = owner_key(owner)
        if wanted in self._owners:
            return
        if not self._owners:
            raise ValueError(
                f"no enrolled card has the owner {owner!r}: no card has an owner yet "
                "(`edgegw cards update CARD --owner NAME` sets one)"
            )
        close = difflib.get_close_matches(wanted, self._owners, n=3, cutoff=0.6)
        hint = (
            "; did you mean " + " or ".join(repr(self._owners[k]) for k in close) + "?"
            if close
            else "; owners are matched whole (any case), as `edgegw cards list` shows them"
        )
        raise ValueError(f"no enrolled card has the owner {owner!r}{hint}")

    def card_id(self, text: str) -> CardId:
        """The card an installer typed (an enrolled card's id as stored, or any card id)."""
        hit = self._cards.get(text.strip().upper())
        if hit is not None:
            return hit.id
        return normal_card_id(parse_card_id(text))


# ------------------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True)
class Session:
    """One charging session (one row of ``transactions``), with its card resolved."""

    id: int
    charger_id: str
    connector_id: int
    transaction_id: int | None
    """The id the charger uses (for a session started offline, the gateway's local id)."""
    cloud_transaction_id: int | None
    """The cloud's id: the same for a relayed session, the mapped one for an offline start
    (None until the cloud accepted it), None standalone."""
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
                    "cost": None if self.cost is None else _cents(self.cost),
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


_SELECT: Final = (
    "SELECT t.id, t.charger_id, t.connector_id, t.transaction_id, t.origin, t.id_tag,"
    " t.meter_start, t.started_at, t.meter_stop, t.stopped_at, t.stop_reason, t.recorded_at,"
    " m.local_id IS NOT NULL, m.cloud_id, t.stop_recorded_at, t.tariff, t.cost, t.card_groups,"
    # CASE, not AND: SQLite would run the subquery for every row.
    " CASE WHEN t.stopped_at IS NULL THEN EXISTS (SELECT 1 FROM transactions n"
    "  WHERE n.charger_id = t.charger_id AND n.connector_id = t.connector_id AND n.id > t.id)"
    " ELSE 0 END"
    " FROM transactions t LEFT JOIN transaction_ids m ON t.origin = 'gateway'"
    " AND m.charger_id = t.charger_id AND m.local_id = t.transaction_id"
)


class SessionQueries:
    """Sessions read from ``conn`` (see :func:`open_read_only`), cards from ``cards``."""

    def __init__(self, conn: aiosqlite.Connection, cards: CardResolver) -> None:
        self._conn = conn
        self.cards = cards

    async def page(
        self,
        where: SessionFilter,
        *,
        limit: int | None = None,
        after: int | None = None,
        newest_first: bool = False,
    ) -> tuple[list[Session], int | None]:
        """Up to ``limit`` sessions matching ``where``, in recording order (or newest first).

        ``after`` is the cursor returned by the previous page; the returned cursor is None
        when there is nothing more.
        """
        found: list[Session] = []
        cursor = after
        single = None if where.card is None else CardIndex([where.card])
        owner = None if where.owner is None else owner_key(where.owner)
        while limit is None or len(found) < limit:
            rows = await self._rows(where, cursor, newest_first)
            if not rows:
                return found, None
            for row in rows:
                cursor = row[0]
                session = self._session(row)
                if self._keep(session, where, single, owner):
                    found.append(session)
                    if limit is not None and len(found) >= limit:
                        return found, cursor
            if len(rows) < _CHUNK:
                return found, None
        return found, cursor

    async def sessions(self, where: SessionFilter | None = None) -> list[Session]:
        """Every session matching ``where``, oldest recorded first."""
        found, _ = await self.page(where or SessionFilter())
        return found

    async def report(self, month: Month, tz: tzinfo = UTC, *, now: float) -> MonthlyReport:
        start, end = month.bounds(tz)
        candidates = await self.sessions(SessionFilter(since=start, until=end))
        return monthly_report(candidates, month, tz, now=now, resolver=self.cards)

    async def _rows(
        self, where: SessionFilter, cursor: int | None, newest_first: bool
    ) -> list[sqlite3.Row]:
        clauses: list[str] = []
        args: list[Any] = []
        if where.charger is not None:
            clauses.append("t.charger_id = ?")
            args.append(where.charger)
        # A coarse cut in SQL so months of history are not read into Python: a day of margin,
        # and rows whose times SQLite cannot read are kept. _keep decides exactly.
        if where.since is not None:
            clauses.append(
                "(t.stopped_at IS NULL OR julianday(t.stopped_at) IS NULL"
                " OR julianday(t.stopped_at) >= ?)"
            )
            args.append(_julian_day(where.since) - 1)
        if where.until is not None:
            clauses.append("(julianday(t.started_at) IS NULL OR julianday(t.started_at) < ?)")
            args.append(_julian_day(where.until) + 1)
        if cursor is not None:
            clauses.append("t.id < ?" if newest_first else "t.id > ?")
            args.append(cursor)
        query = _SELECT
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += f" ORDER BY t.id {'DESC' if newest_first else 'ASC'} LIMIT {_CHUNK}"
        async with self._conn.execute(query, args) as rows:
            return list(await rows.fetchall())

    def _session(self, row: sqlite3.Row) -> Session:
        (
            row_id,
            charger_id,
            connector_id,
            transaction_id,
            origin,
            id_tag,
            meter_start,
            started_at,
            meter_stop,
            stopped_at,
            stop_reason,
            recorded_at,
            offline,
            cloud_id,
            stop_recorded_at,
            stored_tariff,
            stored_cost,
            stored_groups,
            superseded,
        ) = row
        if origin == "cloud":
            mode, cloud = SessionMode.CLOUD, transaction_id
        elif offline:
            mode, cloud = SessionMode.OFFLINE, cloud_id
        else:
            mode, cloud = SessionMode.STANDALONE, None
        if stopped_at is not None:
            state = SessionState.FINISHED
        else:
            state = SessionState.UNCLOSED if superseded else SessionState.OPEN
        started = _charger_time(started_at)
        started_ts = float(recorded_at) if started is None else started
        stopped_ts = _charger_time(stopped_at)
        card = self.cards.resolve(charger_id, id_tag)
        priced: Priced | None = None
        gateway_times: tuple[str, ...] = ()
        if state is SessionState.FINISHED and meter_stop is not None:
            start_at, end_at, gateway_times = priced_times(
                started_at, float(recorded_at), stopped_at, stop_recorded_at
            )
            if stored_cost is not None:  # priced when its stop was recorded
                priced = Priced(str(stored_tariff), float(stored_cost), _groups(stored_groups))
            else:
                priced = self.cards.price(
                    charger_id, card, start_at, end_at, max(0, meter_stop - meter_start)
                )
        return Session(
            id=row_id,
            charger_id=charger_id,
            connector_id=connector_id,
            transaction_id=transaction_id,
            cloud_transaction_id=cloud,
            mode=mode,
            id_tag=id_tag,
            card=card,
            state=state,
            started_ts=started_ts,
            stopped_ts=stopped_ts,
            meter_start=meter_start,
            meter_stop=meter_stop,
            stop_reason=stop_reason,
            tariff=None if priced is None else priced.tariff,
            cost=None if priced is None else priced.cost,
            card_groups=None if stored_cost is None or priced is None else priced.card_groups,
            gateway_times=gateway_times if priced is not None else (),
        )

    def _keep(
        self, session: Session, where: SessionFilter, single: CardIndex | None, owner: str | None
    ) -> bool:
        if where.until is not None and session.started_ts >= where.until:
            return False
        if where.since is not None:
            end = math.inf if session.state is SessionState.OPEN else session.ended_ts
            if end < where.since:
                return False
        if owner is not None or where.no_owner:
            held_by = "" if session.card is None else owner_key(session.card.owner)
            if held_by != (owner or ""):
                return False
        if where.card is not None and single is not None:
            if session.card is not None:
                return session.card.key == where.card.key
            # Not an installer card: match the tag against this one card alone.
            return single.lookup(session.id_tag, self.cards.format_of(session.charger_id)).found
        return True


def priced_times(
    started_at: str, start_recorded: float, stopped_at: str | None, stop_recorded: float | None
) -> tuple[float, float, tuple[str, ...]]:
    """The start and end a session is priced over, and which of them are the gateway's.

    The charger's timestamps, unless one does not parse or is more than
    :data:`~edgegw.store.tariffs.CLOCK_TOLERANCE` away from when the gateway recorded that
    message (``stop_recorded`` None: not known, before schema 4; the charger's stop is kept).
    An end before the start is the start (no duration).
    """
    start, start_fixed = checked_time(_charger_time(started_at), start_recorded)
    assert start is not None
    end, end_fixed = checked_time(_charger_time(stopped_at), stop_recorded)
    if end is None:
        end = start
    fixed = (("start",) if start_fixed else ()) + (("stop",) if end_fixed else ())
    return start, max(start, end), fixed


def cost_times(gateway_times: Sequence[str]) -> str:
    """How a session's cost was timed, for reports: ``charger`` or ``gateway: start, stop``."""
    return "gateway: " + ", ".join(gateway_times) if gateway_times else "charger"


def _groups(text: str | None) -> tuple[str, ...]:
    try:
        names = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple(str(n) for n in names) if isinstance(names, list) else ()


# ------------------------------------------------------------------------------- report


@dataclass(slots=True)
class CardTotal:
    """Finished sessions of one card (or of one unknown idTag) in the month.

    ``id_tag`` is the card's canonical id, or for an unknown card the tag as reported.
    """

    card: Card | None
    id_tag: str
    sessions: int = 0
    energy_wh: int = 0
    seconds: float = 0.0
    cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "card": None if self.card is None else self.card.id.canonical,
            "id_tag": self.id_tag,
            "known": self.card is not None,
            "owner": None if self.card is None else self.card.owner,
            "label": None if self.card is None else self.card.label,
            **_amounts(self.sessions, self.energy_wh, self.seconds, self.cost),
        }


@dataclass(slots=True)
class OwnerTotal:
    """Finished sessions of one owner's cards; owner None: unknown cards and cards without."""

    owner: str | None
    cards: list[str] = field(default_factory=list)
    sessions: int = 0
    energy_wh: int = 0
    seconds: float = 0.0
    cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "cards": self.cards,
            **_amounts(self.sessions, self.energy_wh, self.seconds, self.cost),
        }


@dataclass(slots=True)
class GroupTotal:
    """Finished sessions of the cards of one card group (a card in two groups counts in both)."""

    group: str
    cards: set[str] = field(default_factory=set)
    sessions: int = 0
    energy_wh: int = 0
    seconds: float = 0.0
    cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "cards": sorted(self.cards),
            **_amounts(self.sessions, self.energy_wh, self.seconds, self.cost),
        }


def _amounts(
    sessions: int, energy_wh: int, seconds: float, cost: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sessions": sessions,
        "energy_wh": energy_wh,
        "energy_kwh": round(energy_wh / 1000, 3),
        "hours": round(seconds / 3600, 2),
    }
    if cost is not None:
        out["cost"] = _cents(cost)
    return out


def _cents(amount: float) -> float:
    return round(amount + 0.0, 2)


def _add_cost(total: float | None, cost: float | None) -> float | None:
    if cost is None:
        return total
    return cost if total is None else total + cost


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    month: Month
    tz: str
    start_ts: float
    end_ts: float
    generated_ts: float
    cards: list[CardTotal]
    owners: list[OwnerTotal]
    open_at_end: list[Session]
    unclosed: list[Session]
    meter_backwards: int
    """Finished sessions whose meter went backwards (counted as 0 Wh)."""
    currency: str | None = None
    """The tariffs' currency: costs are shown when it is set."""
    groups: list[GroupTotal] = field(default_factory=list)

    @property
    def sessions(self) -> int:
        return sum(c.sessions for c in self.cards)

    @property
    def energy_wh(self) -> int:
        return sum(c.energy_wh for c in self.cards)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.cards)

    @property
    def cost(self) -> float | None:
        if self.currency is None:
            return None
        return sum(c.cost or 0.0 for c in self.cards)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": str(self.month),
            "timezone": self.tz,
            "start": iso_utc(self.start_ts),
            "start_ts": self.start_ts,
            "end": iso_utc(self.end_ts),
            "end_ts": self.end_ts,
            "generated_at": iso_utc(self.generated_ts),
            "generated_ts": self.generated_ts,
            "basis": "finished sessions, counted in the month they ended",
            "cards": [c.to_json() for c in self.cards],
            "owners": [o.to_json() for o in self.owners],
            "totals": _amounts(self.sessions, self.energy_wh, self.seconds, self.cost),
            **(
                {}
                if self.currency is None
                else {"currency": self.currency, "groups": [g.to_json() for g in self.groups]}
            ),
            "meter_backwards": self.meter_backwards,
            "open_at_month_end": [s.to_json() for s in self.open_at_end],
            "unclosed": [s.to_json() for s in self.unclosed],
        }


def monthly_report(
    sessions: Iterable[Session],
    month: Month,
    tz: tzinfo = UTC,
    *,
    now: float,
    resolver: CardResolver | None = None,
) -> MonthlyReport:
    """Energy, sessions and hours per card and per owner for ``month`` (in ``tz``).

    Counted: sessions that finished in the month. Listed apart: sessions started before the
    month's end that had not finished by then (open at month end; they count in the month they
    end) and sessions started in the month that never got a StopTransaction (unclosed).
    With tariffs (``resolver.tariffs``), costs are added up too, and per card group.
    """
    start, end = month.bounds(tz)
    by_card: dict[str, CardTotal] = {}
    groups: dict[str, GroupTotal] = {}
    open_at_end: list[Session] = []
    unclosed: list[Session] = []
    backwards = 0
    for session in sessions:
        if session.state is SessionState.UNCLOSED:
            if start <= session.started_ts < end:
                unclosed.append(session)
            continue
        if session.started_ts >= end:
            continue
        if session.state is SessionState.OPEN or session.ended_ts >= end:
            open_at_end.append(session)
            continue
        if session.ended_ts < start:
            continue
        key = session.card.key if session.card is not None else "tag:" + session.id_tag.upper()
        total = by_card.get(key)
        if total is None:
            tag = session.id_tag if session.card is None else session.card.id.canonical
            total = by_card[key] = CardTotal(session.card, tag)
        total.sessions += 1
        total.energy_wh += session.energy_wh or 0
        total.seconds += session.duration_s or 0.0
        total.cost = _add_cost(total.cost, session.cost)
        backwards += session.meter_backwards
        if resolver is not None and resolver.tariffs and session.card is not None:
            names = session.card_groups  # when it was priced at its stop, else today's
            if names is None:
                names = tuple(g.name for g in resolver.access.groups_of(session.card.key))
            for name in names:
                sums = groups.setdefault(name, GroupTotal(name))
                sums.cards.add(session.card.id.canonical)
                sums.sessions += 1
                sums.energy_wh += session.energy_wh or 0
                sums.seconds += session.duration_s or 0.0
                sums.cost = _add_cost(sums.cost, session.cost)
    cards = sorted(
        by_card.values(),
        key=lambda c: (c.card is None, c.card.owner if c.card else "", c.id_tag),
    )
    owners: dict[str | None, OwnerTotal] = {}  # by owner_key, as the owner filter compares
    for total in cards:
        written = total.card.owner.strip() if total.card is not None else ""
        folded = owner_key(written) or None
        group = owners.get(folded)
        if group is None:
            group = owners[folded] = OwnerTotal(written or None)
        group.cards.append(total.card.id.canonical if total.card else total.id_tag)
        group.sessions += total.sessions
        group.energy_wh += total.energy_wh
        group.seconds += total.seconds
        group.cost = _add_cost(group.cost, total.cost)
    return MonthlyReport(
        month=month,
        tz=str(tz),
        start_ts=start,
        end_ts=end,
        generated_ts=now,
        cards=cards,
        owners=sorted(owners.values(), key=lambda o: (o.owner is None, o.owner or "")),
        open_at_end=sorted(open_at_end, key=lambda s: s.started_ts),
        unclosed=sorted(unclosed, key=lambda s: s.started_ts),
        meter_backwards=backwards,
        currency=None if resolver is None or not resolver.tariffs else resolver.tariffs.currency,
        groups=sorted(groups.values(), key=lambda g: g.group),
    )


# ------------------------------------------------------------------------------- database


@asynccontextmanager
async def open_read_only(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """A read-only connection to the gateway's database at ``path``; never creates or migrates.

    Raises :class:`~edgegw.store.db.StoreError` saying what is wrong (no file, no permission,
    a schema this version cannot read).
    """
    uri = await asyncio.to_thread(_read_only_uri, path)
    try:
        conn = await aiosqlite.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise _unreadable(path, exc) from exc
    try:
        try:
            await conn.execute("PRAGMA busy_timeout=5000")
            async with conn.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
        except sqlite3.Error as exc:
            raise _unreadable(path, exc) from exc
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{path} has schema version {version}, newer than this edgegw understands "
                f"({len(MIGRATIONS)}); use the edgegw that wrote it"
            )
        if version < SCHEMA_NEEDED:
            raise StoreError(
                f"{path} has schema version {version}, older than this edgegw reads "
                f"({SCHEMA_NEEDED}); start the daemon once to upgrade it"
            )
        yield conn
    finally:
        await conn.close()


def _read_only_uri(path: Path) -> str:
    if not path.exists():
        raise StoreError(
            f"there is no database at {path}: the gateway has not run with this "
            "configuration yet (or store.path points elsewhere)"
        )
    return f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"


def _unreadable(path: Path, exc: sqlite3.Error) -> StoreError:
    hint = ""
    if "unable to open" in str(exc) or "readonly" in str(exc):
        hint = "; it belongs to the daemon's user: run the command with sudo"
    return StoreError(f"cannot read the database {path}: {exc}{hint}")
