"""What the daemon records: chargers, connector status, transactions, events; the message log.

The :class:`Store` is the single writer of the database. What the durability rule needs (the
outbox, :mod:`edgegw.store.outbox`) is committed with ``synchronous=FULL`` before a charger is
answered; the rest is written as it happens with ``synchronous=NORMAL`` (WAL), except connector
status, which chargers report often and nobody needs to the second after a power cut: the
latest report per connector is kept in memory and written in one transaction every
:data:`STATUS_FLUSH_INTERVAL` seconds by a supervised writer task (reads see the latest).
Connections, boots and events are dropped (said once a minute) when the disk refuses a write:
a full disk must not refuse a charger its connection. Text SQLite cannot encode (a lone
surrogate from a peer) is stored escaped, never handed to a writer it would break.

The troubleshooting message log is not in the database at all: it is a bounded ring in memory,
dumped to a file on demand and on stop (see :mod:`edgegw.store.messagelog` for why).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edgegw.security.redact import redact_frame
from edgegw.store.bookkeeper import Bookkeeper
from edgegw.store.db import Database
from edgegw.store.messagelog import (
    LoggedFrame,
    MessageLog,
    dump_path,
    printable,
    write_dump,
)
from edgegw.store.outbox import Outbox
from edgegw.tasks import TaskOwner

if TYPE_CHECKING:
    from edgegw.config import StoreConfig
    from edgegw.store.tariffs import Priced

log = logging.getLogger(__name__)

STATUS_FLUSH_INTERVAL: Final = 5.0
"""Seconds between two writes of the connector statuses reported since the last one."""
MAX_PENDING_STATUS: Final = 100_000
"""Connector statuses kept while the disk refuses writes; further new connectors are dropped."""
_EVENTS_KEPT = 10000
_DROP_WARN_EVERY = 60.0


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


@dataclass(frozen=True, slots=True)
class StopFacts:
    """A session as its StopTransaction is recorded: what a :data:`StopPricer` prices."""

    charger_id: str
    id_tag: str
    meter_start: int
    started_at: str
    """The charger's timestamps as sent, and when the gateway recorded each message."""
    start_recorded: float
    meter_stop: int
    stopped_at: str
    stop_recorded: float


StopPricer = Callable[[StopFacts], "Priced | None"]
"""Prices a session when its stop is recorded (the card authority's, in the daemon)."""


class Store:
    """The daemon's records. Open with :meth:`open`, always :meth:`close`."""

    def __init__(
        self,
        db: Database,
        *,
        messages: MessageLog,
        clock: Callable[[], float],
        message_log_file: Path | None = None,
        status_interval: float = STATUS_FLUSH_INTERVAL,
    ) -> None:
        self.db = db
        self._clock = clock
        self.messages = messages
        """The troubleshooting message log (in memory; see :mod:`edgegw.store.messagelog`)."""
        self._message_log_file = message_log_file
        self._status: dict[tuple[str, int], tuple[str, str, str | None, str | None, float]] = {}
        self._status_dropped = 0
        self._status_failures = 0
        self._dropped_writes = 0
        self._drop_warned_at: float | None = None
        self._drop_reported = False
        self._status_interval = status_interval
        self.status_round = asyncio.Event()
        """Set after every round of the status writer, written or not (for tests to wait on)."""
        self._tasks = TaskOwner("store")
        self._stopping = asyncio.Event()
        self.outbox = Outbox(db, clock)
        self.bookkeeping = Bookkeeper("store-records", clock=clock, batch=db.batch)
        """One writer, in order, for sessions and boots (and what callers post: card answers,
        events): see :mod:`edgegw.store.bookkeeper`."""
        self.pricer: StopPricer | None = None
        """Prices each session when its stop is recorded (None: priced when shown)."""

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        message_log_size: int = 0,
        message_log_bytes: int = 16 * 2**20,
        message_log_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        status_interval: float = STATUS_FLUSH_INTERVAL,
    ) -> Store:
        """Open the database at ``path``. The message log keeps ``message_log_size`` frames
        (0: none, what the CLI opens) in ``message_log_bytes``; ``message_log_file`` is read
        back now and written on :meth:`close`."""
        db = await Database.open(path)
        messages = MessageLog(size=message_log_size, max_bytes=message_log_bytes, clock=clock)
        store = cls(
            db,
            messages=messages,
            clock=clock,
            message_log_file=message_log_file,
            status_interval=status_interval,
        )
        try:
            await store._reset_connected()
            if message_log_file is not None and message_log_size:
                await asyncio.to_thread(store._load_message_log, message_log_file)
        except BaseException:
            await db.close()
            raise
        store._tasks.supervise(store._status_writer, "status-writer")
        return store

    @classmethod
    async def open_for_daemon(
        cls, config: StoreConfig, *, clock: Callable[[], float] = time.time
    ) -> Store:
        """The daemon's store: the configured database and message log, whose dump lives
        next to the database (:func:`~edgegw.store.messagelog.dump_path`)."""
        return await cls.open(
            config.path,
            message_log_size=config.message_log_size,
            message_log_bytes=config.message_log_bytes,
            message_log_file=None if str(config.path) == ":memory:" else dump_path(config.path),
            clock=clock,
        )

    async def close(self) -> None:
        self._stopping.set()
        # A write cancelled half-way is rolled back; its statuses are still pending and are
        # written just below (upserts: a commit that did land is harmlessly repeated).
        await self._tasks.close()
        try:
            await self.bookkeeping.close()
            await self.outbox.close()
            await self._write_status()
        except sqlite3.Error as exc:
            log.warning("connector statuses not written on close: %s", exc)
        finally:
            try:
                await self._dump_message_log()
            finally:
                await self.db.close()

    async def _reset_connected(self) -> None:
        # After a crash no charger is connected, whatever the last run wrote.
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE chargers SET connected = 0 WHERE connected = 1")

    @contextlib.contextmanager
    def _or_dropped(self, what: str) -> Iterator[None]:
        """A record nobody's money depends on (a connection, a boot, an event), written or
        dropped: a disk that refuses writes (full, read-only, failing) must not refuse a
        charger its connection or crash the task that records. Said at most once a minute,
        and once when writes get through again."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            self._dropped_writes += 1
            now = self._clock()
            if self._drop_warned_at is None or now - self._drop_warned_at >= _DROP_WARN_EVERY:
                self._drop_warned_at = now
                self._drop_reported = True
                log.warning(
                    "%s not recorded: %s (%d record(s) dropped so far)",
                    what,
                    exc,
                    self._dropped_writes,
                )
        else:
            if self._drop_reported:
                self._drop_reported = False
                log.info(
                    "the database takes writes again (%d record(s) dropped)", self._dropped_writes
                )

    # ------------------------------------------------------------ chargers

    async def charger_seen(self, charger_id: str, address: str | None, *, connected: bool) -> None:
        now = self._clock()
        with self._or_dropped("a charger's connection"):
            async with self.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO chargers (id, first_seen, last_seen, last_address, connected)"
                    " VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,"
                    " last_address = COALESCE(excluded.last_address, last_address),"
                    " connected = excluded.connected, state = 'known'",
                    (_text(charger_id), now, now, _text(address), int(connected)),
                )

    async def charger_refused(self, charger_id: str, address: str | None, reason: str) -> None:
        """Remember an identity that tried to connect and was refused (for the installer)."""
        now = self._clock()
        with self._or_dropped("a refused identity"):
            async with self.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO chargers (id, state, first_seen, last_seen, last_address,"
                    " refused_count, refused_reason) VALUES (?, 'pending', ?, ?, ?, 1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,"
                    " last_address = excluded.last_address, refused_count = refused_count + 1,"
                    " refused_reason = excluded.refused_reason",
                    (_text(charger_id), now, now, _text(address), _text(reason)),
                )

    def record_boot(self, charger_id: str, payload: dict[str, Any]) -> asyncio.Future[None]:
        """Record a BootNotification through the bookkeeping writer (returns at once; the
        future is done once it was written or dropped)."""
        return self.bookkeeping.post(
            lambda: self._write_boot(charger_id, payload), "a BootNotification"
        )

    async def _write_boot(self, charger_id: str, payload: dict[str, Any]) -> None:
        with self._or_dropped("a BootNotification"):
            async with self.db.transaction() as conn:
                await conn.execute(
                    "UPDATE chargers SET vendor = ?, model = ?, serial = ?, firmware = ?,"
                    " last_boot = ? WHERE id = ?",
                    (
                        _text(payload.get("chargePointVendor")),
                        _text(payload.get("chargePointModel")),
                        _text(
                            payload.get("chargePointSerialNumber")
                            or payload.get("chargeBoxSerialNumber")
                        ),
                        _text(payload.get("firmwareVersion")),
                        self._clock(),
                        _text(charger_id),
                    ),
                )

    def record_status(self, charger_id: str, payload: dict[str, Any]) -> None:
        """Remember a connector's StatusNotification; written with the next batch.

        Only the latest report per connector is kept, so a charger repeating its status costs
        nothing on disk. Values the charger sent that are not text are stored as their JSON.
        """
        connector = payload.get("connectorId", 0)
        key = (printable(charger_id), connector if isinstance(connector, int) else -1)
        if key not in self._status and len(self._status) >= MAX_PENDING_STATUS:
            self._status_dropped += 1
            return
        self._status[key] = (
            _text(payload.get("status", "")) or "",
            _text(payload.get("errorCode", "")) or "",
            _text(payload.get("info")),
            _text(payload.get("timestamp")),
            self._clock(),
        )

    async def _status_writer(self) -> None:
        """Write the connector statuses reported since the last batch, every few seconds.

        A batch the disk refuses (full, read-only) stays pending and is tried again with the
        next one; the loop itself never ends on a write error (and is supervised if it did).
        """
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(self._status_interval):
                    await self._stopping.wait()
            except TimeoutError:
                try:
                    await self._write_status()
                except sqlite3.Error as exc:
                    self._status_failures += 1
                    if self._status_failures == 1:
                        log.warning("connector statuses not written (will retry): %s", exc)
                else:
                    if self._status_failures:
                        log.info("connector statuses written again")
                    self._status_failures = 0
                self.status_round.set()

    async def _write_status(self) -> None:
        if not self._status:
            return
        batch = dict(self._status)
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO connector_status (charger_id, connector_id, status, error_code, info,"
                " charger_time, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (charger_id, connector_id) DO UPDATE SET status = excluded.status,"
                " error_code = excluded.error_code, info = excluded.info,"
                " charger_time = excluded.charger_time, updated_at = excluded.updated_at",
                [(c, n, *values) for (c, n), values in batch.items()],
            )
        for key, values in batch.items():  # newer reports that came in meanwhile stay pending
            if self._status.get(key) is values:
                del self._status[key]
        if self._status_dropped:
            log.warning(
                "%d connector status report(s) were dropped while the disk refused writes",
                self._status_dropped,
            )
            self._status_dropped = 0

    async def chargers(self) -> list[ChargerRow]:
        await self.bookkeeping.settled()  # the boots handed in so far
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
        found = {r[0]: (r[1], r[2]) for r in await cursor.fetchall()}
        for (charger, connector), values in self._status.items():  # not written yet
            if charger == charger_id:
                found[connector] = (values[0], values[1])
        return found

    # ------------------------------------------------------------ transactions

    async def transaction_started(
        self,
        charger_id: str,
        payload: dict[str, Any],
        transaction_id: int | None,
        *,
        origin: str,
    ) -> None:
        """Record a session's start, in order after every record handed in before; return
        once it is written (the gateway answers for it)."""
        await self.bookkeeping.run(
            lambda: self._write_started(charger_id, payload, transaction_id, origin)
        )

    def post_transaction_started(
        self, charger_id: str, payload: dict[str, Any], transaction_id: int | None
    ) -> asyncio.Future[None]:
        """Record a start the cloud accepted, without waiting (the cloud holds it already)."""
        return self.bookkeeping.post(
            lambda: self._write_started(charger_id, payload, transaction_id, "cloud"),
            "a relayed StartTransaction",
        )

    async def _write_started(
        self, charger_id: str, payload: dict[str, Any], transaction_id: int | None, origin: str
    ) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO transactions (charger_id, connector_id, transaction_id, origin,"
                " id_tag, meter_start, started_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _text(charger_id),
                    payload["connectorId"],
                    transaction_id,
                    origin,
                    _text(payload["idTag"]),
                    payload["meterStart"],
                    _text(payload["timestamp"]),
                    self._clock(),
                ),
            )

    async def transaction_stopped(self, charger_id: str, payload: dict[str, Any]) -> bool:
        """Close the open transaction; False if no open one matched (it is still acknowledged).

        In order after every record handed in before (a start the relay handed in a moment
        ago is found). With a :attr:`pricer`, the session's tariff, cost and card groups are
        written in the same UPDATE (a failing pricer leaves them unset: the stop is recorded
        all the same).
        """
        return await self.bookkeeping.run(lambda: self._write_stopped(charger_id, payload))

    def post_transaction_stopped(
        self, charger_id: str, payload: dict[str, Any]
    ) -> asyncio.Future[None]:
        """Record a stop the cloud accepted, without waiting (the cloud holds it already)."""

        async def stop() -> None:
            await self._write_stopped(charger_id, payload)

        return self.bookkeeping.post(stop, "a relayed StopTransaction")

    async def _write_stopped(self, charger_id: str, payload: dict[str, Any]) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "SELECT id, id_tag, meter_start, started_at, recorded_at FROM transactions"
                " WHERE charger_id = ? AND transaction_id = ? AND stopped_at IS NULL"
                " ORDER BY id DESC LIMIT 1",
                (_text(charger_id), payload["transactionId"]),
            )
            row = await cursor.fetchone()
            if row is None:
                return False
            now = self._clock()
            priced = self._price(
                StopFacts(
                    charger_id,
                    row[1],
                    row[2],
                    row[3],
                    row[4],
                    payload["meterStop"],
                    str(payload["timestamp"]),
                    now,
                )
            )
            await conn.execute(
                "UPDATE transactions SET meter_stop = ?, stopped_at = ?, stop_reason = ?,"
                " stop_recorded_at = ?, tariff = ?, cost = ?, card_groups = ? WHERE id = ?",
                (
                    payload["meterStop"],
                    _text(payload["timestamp"]),
                    _text(payload.get("reason", "Local")),
                    now,
                    None if priced is None else _text(priced.tariff),
                    None if priced is None else priced.cost,
                    None if priced is None else _text(json.dumps(list(priced.card_groups))),
                    row[0],
                ),
            )
            return True

    def _price(self, facts: StopFacts) -> Priced | None:
        if self.pricer is None:
            return None
        try:
            return self.pricer(facts)
        except Exception:  # the stop matters more than its price (priced when shown then)
            log.exception("%s: pricing the stopped session failed", facts.charger_id)
            return None

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
        await self.bookkeeping.settled()
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
        await self.bookkeeping.settled()
        cursor = await self.db.conn.execute(
            "SELECT transaction_id FROM transactions WHERE charger_id = ? AND connector_id = ?"
            " AND id_tag = ? AND meter_start = ? AND started_at = ? ORDER BY id DESC LIMIT 1",
            (
                _text(charger_id),
                payload["connectorId"],
                _text(payload["idTag"]),
                payload["meterStart"],
                _text(payload["timestamp"]),
            ),
        )
        row = await cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def transaction_recorded(self, charger_id: str, transaction_id: int) -> bool:
        """Whether the charger's transaction ``transaction_id`` was recorded, open or not."""
        await self.bookkeeping.settled()
        cursor = await self.db.conn.execute(
            "SELECT 1 FROM transactions WHERE charger_id = ? AND transaction_id = ?",
            (charger_id, transaction_id),
        )
        return await cursor.fetchone() is not None

    async def transaction_open(self, charger_id: str, transaction_id: int) -> bool:
        """Whether the charger's transaction ``transaction_id`` has not been stopped yet."""
        await self.bookkeeping.settled()
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
        with self._or_dropped("an event"):
            async with self.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO events (at, kind, charger_id, message, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        self._clock(),
                        _text(kind),
                        _text(charger_id),
                        _text(message),
                        None
                        if data is None
                        else json.dumps(data, separators=(",", ":"), default=str),
                    ),
                )
                await conn.execute(
                    "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                    (_EVENTS_KEPT,),
                )

    async def events(self, limit: int = 100) -> list[tuple[float, str, str | None, str]]:
        await self.bookkeeping.settled()  # the events handed in so far
        cursor = await self.db.conn.execute(
            "SELECT at, kind, charger_id, message FROM events ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [(r[0], r[1], r[2], r[3]) for r in await cursor.fetchall()]

    # ------------------------------------------------------------ message log

    def log_frame(self, charger_id: str, direction: str, frame: str) -> None:
        """Keep a frame in the bounded, in-memory message log (never written per frame).

        Passwords a frame may carry (ChangeConfiguration AuthorizationKey) are masked first;
        text that cannot be encoded (lone surrogates) is kept escaped.
        """
        if self.messages.size:
            self.messages.append(charger_id, direction, redact_frame(frame))

    def message_log(self, charger_id: str | None = None, limit: int = 100) -> list[LoggedFrame]:
        """The newest ``limit`` frames (of ``charger_id``), newest first."""
        return self.messages.newest(charger_id=charger_id, limit=limit)

    def _load_message_log(self, path: Path) -> None:
        try:
            count = self.messages.load(path)
        except OSError as exc:
            log.warning("the message log left by the last run (%s) is unreadable: %s", path, exc)
            return
        if count:
            log.info("message log: %d frame(s) of the last run read back from %s", count, path)

    async def _dump_message_log(self) -> None:
        path = self._message_log_file
        if path is None or not self.messages.size:
            return
        try:
            frames = list(self.messages.oldest_first())  # on the loop: never mid-append
            count = await asyncio.to_thread(write_dump, path, frames)
        except OSError as exc:
            log.warning("message log not written to %s: %s", path, exc)
        else:
            log.info("message log: %d frame(s) written to %s", count, path)


def _text(value: Any) -> str | None:
    """A charger's value as text for a TEXT column (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return printable(value)
    return json.dumps(value, separators=(",", ":"))
