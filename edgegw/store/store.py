"""What the daemon records: chargers, connector status, transactions, a bounded message log.

The :class:`Store` is the single writer. The message log is written in batches by an owned task
(frames are appended to memory and flushed about once a second), so relaying never waits on the
disk for it; everything else is written when it happens. The frames waiting for the next batch
are kept column by column (no tuple per frame): at 2,000 chargers that is ~2,000 frames a
second that would otherwise each live long enough to be promoted by the garbage collector and
make its full collections come sooner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgegw.security.redact import redact_frame
from edgegw.store.db import Database
from edgegw.store.outbox import Outbox
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

_FLUSH_INTERVAL = 1.0
_EVENTS_KEPT = 10000


@dataclass(frozen=True, slots=True)
class ChargerRow:
    id: str
    state: str
    connected: bool
    first_seen: float
    last_seen: float
    last_address: str | None
    refused_count: int
    refused_reason: str | None
    vendor: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    last_boot: float | None


@dataclass(frozen=True, slots=True)
class TransactionRow:
    id: int
    charger_id: str
    connector_id: int
    transaction_id: int | None
    origin: str
    id_tag: str
    meter_start: int
    started_at: str
    meter_stop: int | None
    stopped_at: str | None
    stop_reason: str | None


class _LogBuffer:
    """Frames for the next message-log batch, one column per field."""

    __slots__ = ("at", "charger", "direction", "frame")

    def __init__(self) -> None:
        self.at = array("d")
        self.charger: list[str] = []
        self.direction: list[str] = []
        self.frame: list[str] = []


class Store:
    """The daemon's records. Open with :meth:`open`, always :meth:`close`."""

    def __init__(self, db: Database, *, message_log_size: int, clock: Callable[[], float]) -> None:
        self.db = db
        self._clock = clock
        self._log_size = message_log_size
        self._log = _LogBuffer()
        self._tasks = TaskOwner("store")
        self._stopping = asyncio.Event()
        self.outbox = Outbox(db, clock)

    @classmethod
    async def open(
        cls, path: Path, *, message_log_size: int = 20000, clock: Callable[[], float] = time.time
    ) -> Store:
        db = await Database.open(path)
        store = cls(db, message_log_size=message_log_size, clock=clock)
        await store._reset_connected()
        store._tasks.spawn(store._flush_loop(), "message-log")
        return store

    async def close(self) -> None:
        self._stopping.set()  # the flush loop ends between batches, never inside a write
        for task in self._tasks.tasks:
            await task
        await self._tasks.close()
        try:
            await self.outbox.close()
            await self.flush()
        finally:
            await self.db.close()

    async def _reset_connected(self) -> None:
        # After a crash no charger is connected, whatever the last run wrote.
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE chargers SET connected = 0 WHERE connected = 1")

    # ------------------------------------------------------------ chargers

    async def charger_seen(self, charger_id: str, address: str | None, *, connected: bool) -> None:
        now = self._clock()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO chargers (id, first_seen, last_seen, last_address, connected)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,"
                " last_address = COALESCE(excluded.last_address, last_address),"
                " connected = excluded.connected, state = 'known'",
                (charger_id, now, now, address, int(connected)),
            )

    async def charger_refused(self, charger_id: str, address: str | None, reason: str) -> None:
        """Remember an identity that tried to connect and was refused (for the installer)."""
        now = self._clock()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO chargers (id, state, first_seen, last_seen, last_address,"
                " refused_count, refused_reason) VALUES (?, 'pending', ?, ?, ?, 1, ?)"
                " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,"
                " last_address = excluded.last_address, refused_count = refused_count + 1,"
                " refused_reason = excluded.refused_reason",
                (charger_id, now, now, address, reason),
            )

    async def record_boot(self, charger_id: str, payload: dict[str, Any]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE chargers SET vendor = ?, model = ?, serial = ?, firmware = ?, last_boot = ?"
                " WHERE id = ?",
                (
                    payload.get("chargePointVendor"),
                    payload.get("chargePointModel"),
                    payload.get("chargePointSerialNumber") or payload.get("chargeBoxSerialNumber"),
                    payload.get("firmwareVersion"),
                    self._clock(),
                    charger_id,
                ),
            )

    async def record_status(self, charger_id: str, payload: dict[str, Any]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO connector_status (charger_id, connector_id, status, error_code, info,"
                " charger_time, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (charger_id, connector_id) DO UPDATE SET status = excluded.status,"
                " error_code = excluded.error_code, info = excluded.info,"
                " charger_time = excluded.charger_time, updated_at = excluded.updated_at",
                (
                    charger_id,
                    payload.get("connectorId", 0),
                    payload.get("status", ""),
                    payload.get("errorCode", ""),
                    payload.get("info"),
                    payload.get("timestamp"),
                    self._clock(),
                ),
            )

    async def chargers(self) -> list[ChargerRow]:
        cursor = await self.db.conn.execute(
            "SELECT id, state, connected, first_seen, last_seen, last_address, refused_count,"
            " refused_reason, vendor, model, serial, firmware, last_boot FROM chargers ORDER BY id"
        )
        return [ChargerRow(r[0], r[1], bool(r[2]), *r[3:]) for r in await cursor.fetchall()]

    async def connector_status(self, charger_id: str) -> dict[int, tuple[str, str]]:
        cursor = await self.db.conn.execute(
            "SELECT connector_id, status, error_code FROM connector_status WHERE charger_id = ?",
            (charger_id,),
        )
        return {r[0]: (r[1], r[2]) for r in await cursor.fetchall()}

    # ------------------------------------------------------------ transactions

    async def transaction_started(
        self,
        charger_id: str,
        payload: dict[str, Any],
        transaction_id: int | None,
        *,
        origin: str,
    ) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO transactions (charger_id, connector_id, transaction_id, origin,"
                " id_tag, meter_start, started_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    charger_id,
                    payload["connectorId"],
                    transaction_id,
                    origin,
                    payload["idTag"],
                    payload["meterStart"],
                    payload["timestamp"],
                    self._clock(),
                ),
            )

    async def transaction_stopped(self, charger_id: str, payload: dict[str, Any]) -> bool:
        """Close the open transaction; False if no open one matched (it is still acknowledged)."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE transactions SET meter_stop = ?, stopped_at = ?, stop_reason = ?"
                " WHERE id = (SELECT id FROM transactions WHERE charger_id = ?"
                " AND transaction_id = ? AND stopped_at IS NULL ORDER BY id DESC LIMIT 1)",
                (
                    payload["meterStop"],
                    payload["timestamp"],
                    payload.get("reason", "Local"),
                    charger_id,
                    payload["transactionId"],
                ),
            )
            return cursor.rowcount > 0

    async def next_counter(self, name: str, *, start: int = 1) -> int:
        """A persisted counter (e.g. standalone transaction ids); never repeats."""
        async with self.db.transaction(durable=True) as conn:
            cursor = await conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                (name, start),
            )
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def transactions(self, charger_id: str | None = None) -> list[TransactionRow]:
        query = (
            "SELECT id, charger_id, connector_id, transaction_id, origin, id_tag, meter_start,"
            " started_at, meter_stop, stopped_at, stop_reason FROM transactions"
        )
        args: tuple[Any, ...] = ()
        if charger_id is not None:
            query += " WHERE charger_id = ?"
            args = (charger_id,)
        cursor = await self.db.conn.execute(query + " ORDER BY id", args)
        return [TransactionRow(*r) for r in await cursor.fetchall()]

    async def started_before(self, charger_id: str, payload: dict[str, Any]) -> int | None:
        """The transaction id of a recorded start equal to this StartTransaction, if any.

        A charger re-sends a start it got no answer for; connector, card, meter reading and
        timestamp together tell a copy from a new session.
        """
        cursor = await self.db.conn.execute(
            "SELECT transaction_id FROM transactions WHERE charger_id = ? AND connector_id = ?"
            " AND id_tag = ? AND meter_start = ? AND started_at = ? ORDER BY id DESC LIMIT 1",
            (
                charger_id,
                payload["connectorId"],
                payload["idTag"],
                payload["meterStart"],
                payload["timestamp"],
            ),
        )
        row = await cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def transaction_recorded(self, charger_id: str, transaction_id: int) -> bool:
        """Whether the charger's transaction ``transaction_id`` was recorded, open or not."""
        cursor = await self.db.conn.execute(
            "SELECT 1 FROM transactions WHERE charger_id = ? AND transaction_id = ?",
            (charger_id, transaction_id),
        )
        return await cursor.fetchone() is not None

    async def transaction_open(self, charger_id: str, transaction_id: int) -> bool:
        """Whether the charger's transaction ``transaction_id`` has not been stopped yet."""
        cursor = await self.db.conn.execute(
            "SELECT 1 FROM transactions WHERE charger_id = ? AND transaction_id = ?"
            " AND stopped_at IS NULL",
            (charger_id, transaction_id),
        )
        return await cursor.fetchone() is not None

    # ------------------------------------------------------------ events

    async def event(
        self,
        kind: str,
        message: str,
        *,
        charger_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record something a caretaker should see (newest first in the TUI)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO events (at, kind, charger_id, message, data) VALUES (?, ?, ?, ?, ?)",
                (
                    self._clock(),
                    kind,
                    charger_id,
                    message,
                    None if data is None else json.dumps(data, separators=(",", ":")),
                ),
            )
            await conn.execute(
                "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (_EVENTS_KEPT,)
            )

    async def events(self, limit: int = 100) -> list[tuple[float, str, str | None, str]]:
        cursor = await self.db.conn.execute(
            "SELECT at, kind, charger_id, message FROM events ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [(r[0], r[1], r[2], r[3]) for r in await cursor.fetchall()]

    # ------------------------------------------------------------ message log

    def log_frame(self, charger_id: str, direction: str, frame: str) -> None:
        """Append a frame to the bounded message log (written in the next batch).

        Passwords a frame may carry (ChangeConfiguration AuthorizationKey) are masked first.
        """
        if self._log_size:
            buffer = self._log
            buffer.at.append(self._clock())
            buffer.charger.append(charger_id)
            buffer.direction.append(direction)
            buffer.frame.append(redact_frame(frame))

    async def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(_FLUSH_INTERVAL):
                    await self._stopping.wait()
            except TimeoutError:
                await self.flush()

    async def flush(self) -> None:
        if not self._log.frame:
            return
        batch, self._log = self._log, _LogBuffer()
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO message_log (at, charger_id, direction, frame) VALUES (?, ?, ?, ?)",
                zip(batch.at, batch.charger, batch.direction, batch.frame, strict=True),
            )
            await conn.execute(
                "DELETE FROM message_log WHERE id <= (SELECT MAX(id) FROM message_log) - ?",
                (self._log_size,),
            )

    async def message_log(
        self, charger_id: str | None = None, limit: int = 100
    ) -> list[tuple[float, str, str, str]]:
        await self.flush()
        query = "SELECT at, charger_id, direction, frame FROM message_log"
        args: tuple[Any, ...] = ()
        if charger_id is not None:
            query += " WHERE charger_id = ?"
            args = (charger_id,)
        cursor = await self.db.conn.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [(r[0], r[1], r[2], r[3]) for r in await cursor.fetchall()]
