"""The durable outbox: transaction messages the cloud has not accepted yet, per charger, in order.

The durability rule (see the design notes) says a transaction message is acknowledged to the
charger only once the cloud accepted it or it is committed here with ``synchronous=FULL``.
Every write goes through a :class:`GroupWriter`: writes that arrive while one commit is running
are committed together in the next one, so a thousand chargers queueing at once cost a few
fsyncs, not a thousand — and no caller is answered before its own write is on disk. Each write
of a shared commit runs in its own SAVEPOINT: a write that fails leaves nothing behind.

A charger re-sends a message it got no answer for (the gateway may have been killed between
the commit and the answer). Every row keeps a digest of the message, and delivered rows are
kept for a day, so a re-sent message is recognised and answered as before, never queued twice.

Transaction ids the gateway hands out while the cloud is away come from one persisted counter
starting at :data:`LOCAL_ID_BASE`, kept per charger in ``transaction_ids`` with the cloud's id
once the replayed StartTransaction was accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite

from edgegw.store.db import Database
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

LOCAL_ID_BASE = 2_000_000_000
"""First local transaction id. Cloud ids are small counters in practice; int32 leaves room."""
DELIVERED_KEPT_S = 86400.0
"""Delivered messages are kept this long to recognise a charger re-sending one."""
_PRUNE_EVERY_S = 300.0
TRANSACTION_IDS_KEPT_S = 30 * 86400.0
"""A closed session's id mapping is loaded into a link for this long after its start."""

T = TypeVar("T")
Write = Callable[[aiosqlite.Connection], Awaitable[Any]]


class GroupWriter:
    """Runs queued writes in shared durable transactions; each caller waits for its commit."""

    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks = TaskOwner(name)
        self._tasks.supervise(self._run, "group-commit")  # a crash must not stop the queueing

    async def write(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        return await self.submit(fn)

    def submit(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> asyncio.Future[T]:
        """Queue ``fn`` for the next commit; the future is done once that commit is."""
        if self._stopping:
            raise RuntimeError("the store is closing")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        self._wake.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._stopping:
                    return
                continue
            batch, self._pending = self._pending, []
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        """One durable transaction for the batch; a write that fails leaves nothing.

        The batch runs first as it is (no extra statement per write: writes do not fail in
        practice). If one raises, the transaction is rolled back and the batch runs again with
        each write in its own SAVEPOINT: a write that raises then is rolled back to its
        savepoint (what it had already executed is undone) and its caller gets the error, the
        other writes are committed. Writes only execute SQL, so running one again after a
        rollback does what it would have done the first time.
        """
        results: _Results = []
        try:
            try:
                await self._run_batch(batch, results, isolated=False)
            except _WriteFailed:
                if len(batch) > 1:
                    results.clear()
                    await self._run_batch(batch, results, isolated=True)
        except Exception as exc:
            log.exception("outbox commit of %d write(s) failed", len(batch))
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, value, error in results:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    async def _run_batch(
        self, batch: list[tuple[Write, asyncio.Future[Any]]], results: _Results, *, isolated: bool
    ) -> None:
        """Run the batch in one durable transaction, rolled back if :class:`_WriteFailed`."""
        async with self._db.transaction(durable=True) as conn:
            for fn, future in batch:
                if isolated:
                    results.append((future, *await _in_savepoint(conn, fn)))
                    continue
                try:
                    results.append((future, await fn(conn), None))
                except Exception as exc:
                    results.append((future, None, exc))  # a lone write's own answer
                    raise _WriteFailed from exc

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks.tasks:
            await task
        await self._tasks.close()


_Results = list[tuple[asyncio.Future[Any], Any, BaseException | None]]


class _WriteFailed(Exception):
    """A write of a batch run without savepoints failed: roll the transaction back."""


async def _in_savepoint(conn: aiosqlite.Connection, fn: Write) -> tuple[Any, BaseException | None]:
    """Run one write of a shared transaction so that, if it fails, it leaves nothing."""
    await conn.execute("SAVEPOINT queued_write")
    try:
        value = await fn(conn)
    except Exception as exc:  # one bad write must not sink the others
        await conn.execute("ROLLBACK TO queued_write")  # a failure here fails the batch
        await conn.execute("RELEASE queued_write")
        return None, exc
    await conn.execute("RELEASE queued_write")
    return value, None


@dataclass(slots=True)
class QueuedMessage:
    """One transaction message waiting for the cloud (payload as the charger sent it)."""

    seq: int
    charger_id: str
    action: str
    payload: dict[str, Any]
    queued_at: float
    attempts: int = 0
    transaction_id: int | None = None
    """For a StartTransaction the local id it was given; else the payload's transactionId."""
    text: str | None = None
    """The payload as stored (compact JSON, keys sorted, ASCII): a replay sends it as it is
    rather than encoding the payload again; None when not known."""


@dataclass(frozen=True, slots=True)
class SyncRow:
    charger_id: str
    queued: int
    parked: int
    oldest_queued_at: float | None


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    seq: int
    charger_id: str
    action: str
    payload: dict[str, Any]
    queued_at: float
    attempts: int
    last_error: str | None


class Outbox:
    """The outbox tables. Created by the :class:`~edgegw.store.store.Store`."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._writer = GroupWriter(db, "outbox")
        self._pruned_at = 0.0
        # Deliveries not yet taken by a commit, and the write that will take them.
        self._deliveries: list[tuple[float, int]] = []
        self._cloud_ids: list[tuple[int, str, int | None]] = []
        self._delivering: asyncio.Future[None] | None = None

    async def close(self) -> None:
        await self._writer.close()

    # ------------------------------------------------------------ queueing (charger side)

    async def enqueue(
        self, charger_id: str, action: str, payload: dict[str, Any]
    ) -> QueuedMessage | None:
        """Commit a message to the outbox (durable) and return it; None if it was known."""
        now = self._clock()
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        digest = _digest(action, text)

        async def insert(conn: aiosqlite.Connection) -> int | None:
            if await _find(conn, charger_id, digest) is not None:
                log.info("%s: %s sent again; it was queued before", charger_id, action)
                return None
            cursor = await conn.execute(
                "INSERT INTO outbox (charger_id, action, payload, transaction_id, queued_at,"
                " digest) VALUES (?, ?, ?, ?, ?, ?)",
                (charger_id, action, text, _transaction_id(payload), now, digest),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        seq = await self._writer.write(insert)
        if seq is None:
            return None
        return QueuedMessage(
            seq, charger_id, action, payload, now, 0, _transaction_id(payload), text
        )

    async def enqueue_start(
        self, charger_id: str, payload: dict[str, Any]
    ) -> tuple[QueuedMessage | None, int]:
        """Queue a StartTransaction and hand out its local transaction id, in one commit.

        A start sent again gets the id it was given the first time, and None for the message.
        """
        now = self._clock()
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        digest = _digest("StartTransaction", text)

        async def insert(conn: aiosqlite.Connection) -> tuple[int | None, int]:
            known = await _find(conn, charger_id, digest)
            if known is not None and known[1] is not None:
                log.info("%s: StartTransaction sent again; same transaction id", charger_id)
                return None, known[1]
            cursor = await conn.execute(
                "INSERT INTO counters (name, value) VALUES ('local-transaction', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                (LOCAL_ID_BASE,),
            )
            row = await cursor.fetchone()
            assert row is not None
            local_id = int(row[0])
            await conn.execute(
                "INSERT INTO transaction_ids (charger_id, local_id, created_at) VALUES (?, ?, ?)",
                (charger_id, local_id, now),
            )
            cursor = await conn.execute(
                "INSERT INTO outbox (charger_id, action, payload, transaction_id, queued_at,"
                " digest) VALUES (?, 'StartTransaction', ?, ?, ?, ?)",
                (charger_id, text, local_id, now, digest),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid, local_id

        seq, local_id = await self._writer.write(insert)
        if seq is None:
            return None, local_id
        message = QueuedMessage(
            seq, charger_id, "StartTransaction", payload, now, 0, local_id, text
        )
        return message, local_id

    async def contains(self, charger_id: str, action: str, payload: dict[str, Any]) -> bool:
        """This exact message is in the outbox (queued, parked, or delivered within a day)."""
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        return await _find(self._db.conn, charger_id, _digest(action, text)) is not None

    # ------------------------------------------------------------ replay (cloud side)

    async def load(
        self, charger_id: str, *, after: int = 0, limit: int = 500
    ) -> tuple[list[QueuedMessage], bool]:
        """Queued (not parked) messages after ``after``, oldest first; True if more follow."""
        cursor = await self._db.conn.execute(
            "SELECT seq, action, payload, queued_at, attempts, transaction_id FROM outbox"
            " WHERE charger_id = ? AND seq > ? AND state = 'queued' ORDER BY seq LIMIT ?",
            (charger_id, after, limit + 1),
        )
        rows = list(await cursor.fetchall())
        more = len(rows) > limit
        messages = [
            QueuedMessage(r[0], charger_id, r[1], json.loads(r[2]), r[3], r[4], r[5], r[2])
            for r in rows[:limit]
        ]
        return messages, more

    async def delivered(self, message: QueuedMessage, cloud_transaction_id: int | None) -> None:
        """The cloud accepted ``message``: forget it (and remember the cloud's id for a start).

        Returns once that is committed. The deliveries of every charger that arrive while one
        commit runs go into the next as one statement (two with starts): a replay marks
        thousands of messages a second, one statement (and one hand-off to SQLite's thread)
        each cost more than the rest of the replay's storage together.
        """
        self._deliveries.append((self._clock(), message.seq))
        if message.action == "StartTransaction" and cloud_transaction_id is not None:
            self._cloud_ids.append(
                (cloud_transaction_id, message.charger_id, message.transaction_id)
            )
        if self._delivering is None or self._delivering.done():  # done: failed before it ran
            self._delivering = self._writer.submit(self._deliveries_write())
        # Shielded: the write is shared, a caller that gives up must not cancel the others'.
        await asyncio.shield(self._delivering)

    def _deliveries_write(self) -> Write:
        taken: tuple[list[tuple[float, int]], list[tuple[int, str, int | None]], bool] | None
        taken = None

        async def write(conn: aiosqlite.Connection) -> None:
            nonlocal taken
            if taken is None:  # the first run takes what is queued; a rerun writes the same
                self._delivering = None
                now = self._clock()
                prune = now - self._pruned_at > _PRUNE_EVERY_S
                if prune:
                    self._pruned_at = now
                taken = (self._deliveries, self._cloud_ids, prune)
                self._deliveries, self._cloud_ids = [], []
            deliveries, cloud_ids, prune = taken
            await conn.executemany(
                "UPDATE outbox SET state = 'delivered', delivered_at = ? WHERE seq = ?",
                deliveries,
            )
            if cloud_ids:
                await conn.executemany(
                    "UPDATE transaction_ids SET cloud_id = ? WHERE charger_id = ? AND local_id = ?",
                    cloud_ids,
                )
            if prune:  # now and then, not per message: it scans the delivered rows
                await conn.execute(
                    "DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?",
                    (deliveries[0][0] - DELIVERED_KEPT_S,),
                )

        return write

    async def failed(self, message: QueuedMessage, error: str, *, parked: bool) -> None:
        """A try did not get through; ``parked`` takes it out of the replay for good."""

        async def update(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE outbox SET attempts = ?, last_error = ?, state = ? WHERE seq = ?",
                (message.attempts, error, "parked" if parked else "queued", message.seq),
            )

        await self._writer.write(update)

    async def transaction_ids(self, charger_id: str) -> dict[int, int | None]:
        """Local transaction id → cloud id (``None`` until the cloud accepted the start).

        The ids a link may still have to translate: every start the cloud has not accepted
        yet, every session still open, and every mapping younger than
        :data:`TRANSACTION_IDS_KEPT_S`. The table keeps them all (session listings join it);
        a link loading years of them for each charger would not.
        """
        cutoff = self._clock() - TRANSACTION_IDS_KEPT_S
        cursor = await self._db.conn.execute(
            "SELECT m.local_id, m.cloud_id FROM transaction_ids m WHERE m.charger_id = ?"
            " AND (m.cloud_id IS NULL OR m.created_at >= ? OR EXISTS (SELECT 1 FROM"
            " transactions t WHERE t.charger_id = m.charger_id AND t.transaction_id = m.local_id"
            " AND t.stopped_at IS NULL))",
            (charger_id, cutoff),
        )
        return {r[0]: r[1] for r in await cursor.fetchall()}

    async def parked_transactions(self, charger_id: str) -> set[int]:
        """Local ids whose StartTransaction is parked: their later messages cannot be sent."""
        cursor = await self._db.conn.execute(
            "SELECT transaction_id FROM outbox WHERE charger_id = ? AND state = 'parked'"
            " AND action = 'StartTransaction'",
            (charger_id,),
        )
        return {r[0] for r in await cursor.fetchall() if r[0] is not None}

    # ------------------------------------------------------------ status and repair

    async def status(self) -> list[SyncRow]:
        cursor = await self._db.conn.execute(
            "SELECT charger_id, SUM(state = 'queued'), SUM(state = 'parked'),"
            " MIN(CASE WHEN state = 'queued' THEN queued_at END)"
            " FROM outbox WHERE state != 'delivered' GROUP BY charger_id ORDER BY charger_id"
        )
        return [SyncRow(r[0], int(r[1]), int(r[2]), r[3]) for r in await cursor.fetchall()]

    async def parked(self, charger_id: str | None = None) -> list[ParkedMessage]:
        query = (
            "SELECT seq, charger_id, action, payload, queued_at, attempts, last_error FROM outbox"
            " WHERE state = 'parked'"
        )
        args: tuple[Any, ...] = ()
        if charger_id is not None:
            query += " AND charger_id = ?"
            args = (charger_id,)
        cursor = await self._db.conn.execute(query + " ORDER BY seq", args)
        return [
            ParkedMessage(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6])
            for r in await cursor.fetchall()
        ]

    async def requeue_parked(self, charger_id: str | None = None) -> int:
        """Put parked messages back in the queue (after the cause was fixed at the cloud)."""

        async def update(conn: aiosqlite.Connection) -> int:
            query = "UPDATE outbox SET state = 'queued', attempts = 0 WHERE state = 'parked'"
            args: tuple[Any, ...] = ()
            if charger_id is not None:
                query += " AND charger_id = ?"
                args = (charger_id,)
            cursor = await conn.execute(query, args)
            return cursor.rowcount

        return await self._writer.write(update)


def _transaction_id(payload: dict[str, Any]) -> int | None:
    value = payload.get("transactionId")
    return value if isinstance(value, int) else None


def _digest(action: str, text: str) -> str:
    return hashlib.blake2b(f"{action}\n{text}".encode(), digest_size=16).hexdigest()


async def _find(
    conn: aiosqlite.Connection, charger_id: str, digest: str
) -> tuple[int, int | None] | None:
    cursor = await conn.execute(
        "SELECT seq, transaction_id FROM outbox WHERE charger_id = ? AND digest = ?"
        " ORDER BY seq DESC LIMIT 1",
        (charger_id, digest),
    )
    row = await cursor.fetchone()
    return None if row is None else (int(row[0]), row[1])
