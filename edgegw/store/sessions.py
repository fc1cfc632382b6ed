"""Charging sessions as the site sees them: lists, exports and the monthly billing report.

Reads the ``transactions`` table the :class:`~edgegw.store.store.Store` writes. One row is one
session, whoever answered its StartTransaction:

* standalone (no cloud): the gateway numbers sessions per charger (``origin = 'gateway'``);
* relayed while the cloud answered: the row carries the cloud's transaction id
  (``origin = 'cloud'``);
* started while the cloud was unreachable: the row carries the gateway's local id
  (>= :data:`~edgegw.store.outbox.LOCAL_ID_BASE`, the id the charger keeps using) and
  ``transaction_ids`` maps it to the cloud's id once the outbox delivered the start. The row is
  never duplicated by the replay; :attr:`Session.cloud_transaction_id` shows the mapped id;
* an OCPP 2.x charger's session (:mod:`edgegw.store.sessions201`, schema 6): the charger's own
  string transaction id (never remapped, the cloud's too), its EVSE as the connector; *offline*
  when the gateway answered and queued its start, *standalone* on a site without a cloud.

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

import math
import sqlite3
from datetime import UTC, tzinfo
from typing import Any, Final

import aiosqlite

from edgegw.auth.idtags import CardIndex
from edgegw.store.readonly import SCHEMA_NEEDED, open_read_only
from edgegw.store.session_cards import CardResolver
from edgegw.store.session_model import (
    Month,
    Session,
    SessionFilter,
    SessionMode,
    SessionState,
    card_groups_of,
    charger_time,
    cost_times,
    iso_utc,
    julian_day,
    owner_key,
    parse_time,
    priced_times,
)
from edgegw.store.session_report import (
    CardTotal,
    GroupTotal,
    MonthlyReport,
    OwnerTotal,
    monthly_report,
)
from edgegw.store.tariffs import Priced

__all__ = [
    "SCHEMA_NEEDED",
    "CardResolver",
    "CardTotal",
    "GroupTotal",
    "Month",
    "MonthlyReport",
    "OwnerTotal",
    "Session",
    "SessionFilter",
    "SessionMode",
    "SessionQueries",
    "SessionState",
    "cost_times",
    "iso_utc",
    "monthly_report",
    "open_read_only",
    "owner_key",
    "parse_time",
    "priced_times",
]

_CHUNK: Final = 500  # rows read per query while filtering in Python


_SELECT: Final = (
    "SELECT t.id, t.charger_id, t.connector_id, t.transaction_id, t.origin, t.id_tag,"
    " t.meter_start, t.started_at, t.meter_stop, t.stopped_at, t.stop_reason, t.recorded_at,"
    " m.local_id IS NOT NULL, m.cloud_id, t.stop_recorded_at, t.tariff, t.cost, t.card_groups,"
    # CASE, not AND: SQLite would run the subquery for every row.
    " CASE WHEN t.stopped_at IS NULL THEN EXISTS (SELECT 1 FROM transactions n"
    "  WHERE n.charger_id = t.charger_id AND n.connector_id = t.connector_id AND n.id > t.id)"
    " ELSE 0 END, {v2}"
    " FROM transactions t LEFT JOIN transaction_ids m ON t.origin = 'gateway'"
    " AND m.charger_id = t.charger_id AND m.local_id = t.transaction_id"
)
_V2_COLUMNS: Final = "t.tx_ref, t.queued"
"""A 2.x session's string transaction id and whether the gateway queued its start (schema 6;
an older file has no 2.x sessions: ``NULL, 0``)."""


class SessionQueries:
    """Sessions read from ``conn`` (see :func:`open_read_only`), cards from ``cards``."""

    def __init__(self, conn: aiosqlite.Connection, cards: CardResolver) -> None:
        self._conn = conn
        self.cards = cards
        self._select: str | None = None

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
            args.append(julian_day(where.since) - 1)
        if where.until is not None:
            clauses.append("(julianday(t.started_at) IS NULL OR julianday(t.started_at) < ?)")
            args.append(julian_day(where.until) + 1)
        if cursor is not None:
            clauses.append("t.id < ?" if newest_first else "t.id > ?")
            args.append(cursor)
        if self._select is None:
            async with self._conn.execute("PRAGMA table_info(transactions)") as info:
                names = {row[1] for row in await info.fetchall()}
            self._select = _SELECT.format(v2=_V2_COLUMNS if "tx_ref" in names else "NULL, 0")
        query = self._select
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
            tx_ref,
            queued,
        ) = row
        if tx_ref is not None:  # a 2.x session: the charger's own id, never remapped
            transaction_id = tx_ref
        if origin == "cloud":
            mode, cloud = SessionMode.CLOUD, transaction_id
        elif queued:
            mode, cloud = SessionMode.OFFLINE, transaction_id
        elif offline:
            mode, cloud = SessionMode.OFFLINE, cloud_id
        else:
            mode, cloud = SessionMode.STANDALONE, None
        if stopped_at is not None:
            state = SessionState.FINISHED
        else:
            state = SessionState.UNCLOSED if superseded else SessionState.OPEN
        started = charger_time(started_at)
        started_ts = float(recorded_at) if started is None else started
        stopped_ts = charger_time(stopped_at)
        card = self.cards.resolve(charger_id, id_tag)
        priced: Priced | None = None
        gateway_times: tuple[str, ...] = ()
        if state is SessionState.FINISHED and meter_stop is not None:
            start_at, end_at, gateway_times = priced_times(
                started_at, float(recorded_at), stopped_at, stop_recorded_at
            )
            if stored_cost is not None:  # priced when its stop was recorded
                priced = Priced(
                    str(stored_tariff), float(stored_cost), card_groups_of(stored_groups)
                )
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
