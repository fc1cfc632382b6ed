"""OCPP 2.x sessions in the ``transactions`` table, beside 1.6's (schema 6).

A 2.x transaction is the charger's own string id (never remapped): it is kept in ``tx_ref``,
and ``transaction_id`` (1.6's integer) stays NULL. ``connector_id`` is the EVSE (which stands
where a 1.6 connector stood), ``id_tag`` the ``idToken.idToken`` of the event that started it
(empty when the station started without one), ``meter_start``/``meter_stop`` the
``Energy.Active.Import.Register`` of the Started/Ended event's meter values (Wh).

A Started event without that register leaves ``meter_start_missing`` set (``meter_start`` 0):
the first later reading of the transaction fills it (:func:`write_meter_start`), and a
session stopped while it is still missing gets no ``meter_stop`` (its energy is unknown, never
the whole register). A Started without an ``idToken`` leaves ``id_tag`` empty: the first
later event naming one gives the session its card (:func:`write_card`). ``queued``: the
gateway answered the Started itself while the cloud was away and queued it (the session's
mode is *offline*); a cloudless site's sessions and those the cloud answered have it 0.

Every write is idempotent: a start already recorded (a copy the station sent again, or the
replay delivering what was recorded when it was answered) is not recorded again, a stop of a
session already stopped changes nothing. So a locally answered event may be recorded when it is
answered and again, if missing, when the outbox delivers it: a gateway killed between the two
loses no session.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from edgegw.store.messagelog import printable
from edgegw.store.store import StopFacts, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Start201:
    """A 2.x transaction's start, as the records keep it."""

    tx_ref: str
    evse: int
    id_tag: str
    meter_start_wh: int | None
    timestamp: str
    queued: bool
    by_cloud: bool = False
    """The cloud answered the Started (``origin`` cloud), else the gateway."""


@dataclass(frozen=True, slots=True)
class Stop201:
    tx_ref: str
    meter_stop_wh: int | None
    timestamp: str
    reason: str


async def write_start(store: Store, charger_id: str, start: Start201, now: float) -> bool:
    """Record ``start`` unless the charger's ``tx_ref`` is recorded already; True if written."""
    async with store.db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO transactions (charger_id, connector_id, transaction_id, tx_ref, origin,"
            " id_tag, meter_start, meter_start_missing, queued, started_at, recorded_at)"
            " SELECT ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM"
            " transactions WHERE charger_id = ? AND tx_ref = ?)",
            (
                printable(charger_id),
                start.evse,
                printable(start.tx_ref),
                "cloud" if start.by_cloud else "gateway",
                printable(start.id_tag),
                start.meter_start_wh or 0,
                int(start.meter_start_wh is None),
                int(start.queued),
                printable(start.timestamp),
                now,
                printable(charger_id),
                printable(start.tx_ref),
            ),
        )
        return cursor.rowcount == 1


async def write_meter_start(store: Store, charger_id: str, tx_ref: str, energy_wh: int) -> bool:
    """The first reading of a running transaction whose Started had none: its meter start.
    Changes nothing (False) when the record has one, or the session has stopped."""
    async with store.db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE transactions SET meter_start = ?, meter_start_missing = 0"
            " WHERE charger_id = ? AND tx_ref = ? AND meter_start_missing = 1"
            " AND stopped_at IS NULL",
            (energy_wh, printable(charger_id), printable(tx_ref)),
        )
        return cursor.rowcount == 1


async def write_card(store: Store, charger_id: str, tx_ref: str, id_tag: str) -> bool:
    """The ``idToken`` a later event of a transaction carries, as its card when it has none
    (its Started named no token: the station started it before the driver was identified).
    Written as a Started's token is (the token's text; cards are matched to it when read).
    Changes nothing (False) when the session has a card already: the first one stays."""
    async with store.db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE transactions SET id_tag = ?"
            " WHERE charger_id = ? AND tx_ref = ? AND id_tag = ''",
            (printable(id_tag), printable(charger_id), printable(tx_ref)),
        )
        return cursor.rowcount == 1


async def write_stop(store: Store, charger_id: str, stop: Stop201, now: float) -> bool:
    """Close the charger's open session ``tx_ref``; False if none is open (unknown, or stopped
    already). Priced like a 1.6 stop when the store has a pricer and the energy is known."""
    async with store.db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT id, id_tag, meter_start, meter_start_missing, started_at, recorded_at"
            " FROM transactions WHERE charger_id = ? AND tx_ref = ? AND stopped_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            (printable(charger_id), printable(stop.tx_ref)),
        )
        row = await cursor.fetchone()
        if row is None:
            return False
        meter_stop = None if row[3] else stop.meter_stop_wh
        priced = None
        if meter_stop is not None and store.pricer is not None:
            facts = StopFacts(
                charger_id, row[1], row[2], row[4], row[5], meter_stop, stop.timestamp, now
            )
            try:
                priced = store.pricer(facts)
            except Exception:  # the stop matters more than its price (priced when shown then)
                log.exception("%s: pricing the stopped session failed", charger_id)
        await conn.execute(
            "UPDATE transactions SET meter_stop = ?, stopped_at = ?, stop_reason = ?,"
            " stop_recorded_at = ?, tariff = ?, cost = ?, card_groups = ? WHERE id = ?",
            (
                meter_stop,
                printable(stop.timestamp),
                printable(stop.reason),
                now,
                None if priced is None else printable(priced.tariff),
                None if priced is None else priced.cost,
                None if priced is None else json.dumps(list(priced.card_groups)),
                row[0],
            ),
        )
        return True


async def open_201(store: Store, charger_id: str, tx_ref: str) -> bool:
    """Whether the charger's 2.x transaction ``tx_ref`` was recorded and has not stopped."""
    await store.bookkeeping.settled()
    cursor = await store.db.conn.execute(
        "SELECT 1 FROM transactions WHERE charger_id = ? AND tx_ref = ? AND stopped_at IS NULL",
        (printable(charger_id), printable(tx_ref)),
    )
    return await cursor.fetchone() is not None


async def running_201(store: Store, charger_id: str | None = None) -> list[tuple[str, str, int]]:
    """Every 2.x transaction recorded and not stopped (of ``charger_id``, or of every charger):
    (charger, its transaction id, EVSE), oldest first. Read at start: the hub reads their
    later events, which name no EVSE, on that EVSE; read by the charger actions without live
    state (:class:`~edgegw.services.charger_actions.StoredSessions`)."""
    await store.bookkeeping.settled()
    query = (
        "SELECT charger_id, tx_ref, connector_id FROM transactions"
        " WHERE tx_ref IS NOT NULL AND stopped_at IS NULL"
    )
    if charger_id is not None:
        cursor = await store.db.conn.execute(
            query + " AND charger_id = ? ORDER BY id", (printable(charger_id),)
        )
    else:
        cursor = await store.db.conn.execute(query + " ORDER BY id")
    return [
        (str(charger), str(tx_ref), evse)
        for charger, tx_ref, evse in await cursor.fetchall()
        if isinstance(evse, int)
    ]
