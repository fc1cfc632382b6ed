"""The decision log: every load-capping round's inputs and outputs, bounded, exportable.

A caretaker asking "why did bay 7 charge at 6 A at 18:02?" needs the meter reading, the
sessions and the limits that round saw and decided. The controller appends one record per
round (about one a second) to memory; a supervised task writes them in batches every
:data:`FLUSH_INTERVAL` seconds, so a control round never waits on the disk and ten rounds share
one commit (a leaf page is written once, not once per round, on an SD card). Readers flush
first, so they see every round. A batch the disk refuses (full) is kept and tried again, up to
:data:`MAX_BUFFERED` rounds; older ones are then dropped, said once. The table (``decisions``,
schema migration 2) keeps the newest ``size`` rounds. :meth:`DecisionLog.export_csv` writes a
time window as CSV for a spreadsheet.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from edgegw.store.db import Database
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 10.0
"""Seconds between two batches (rounds lost to a power cut at most; nothing the durability
rule protects)."""
MAX_BUFFERED = 10_000
"""Rounds kept in memory while the disk is slow; the oldest are dropped beyond (logged)."""

_PAGE = 1000

CSV_COLUMNS = ("id", "at", "time_utc", "mode", "inputs", "outputs")


@dataclass(frozen=True, slots=True)
class Decision:
    """One stored round. ``at`` is POSIX seconds; inputs and outputs are the JSON objects."""

    id: int
    at: float
    mode: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class DecisionLog:
    """Bounded, batched decision log on the daemon's database. :meth:`start`, then
    :meth:`close` (which writes what is still buffered)."""

    def __init__(self, db: Database, *, size: int, flush_interval: float = FLUSH_INTERVAL) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.db = db
        self.size = size
        self._flush_interval = flush_interval
        self._pending: list[tuple[float, str, str, str]] = []
        self._dropped = 0
        self._failures = 0
        self._tasks = TaskOwner("decision-log")
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._tasks.supervise(self._flush_loop, "flush")

    async def close(self) -> None:
        self._stopping.set()
        # A batch cancelled half-way is rolled back and kept: written just below.
        await self._tasks.close()
        try:
            await self.flush()
        except sqlite3.Error as exc:
            log.warning(
                "decision log: %d round(s) not written on close: %s", len(self._pending), exc
            )

    def record(
        self, at: float, mode: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        """Queue one round for the next batch (never blocks). ``inputs``/``outputs`` must be
        JSON-serialisable; non-finite floats are written as null."""
        if not self.size:
            return
        self._pending.append((at, mode, _dumps(inputs), _dumps(outputs)))
        if len(self._pending) > MAX_BUFFERED:
            excess = len(self._pending) - MAX_BUFFERED
            del self._pending[:excess]
            if not self._dropped:
                log.warning("decision log: the disk is not keeping up; dropping oldest rounds")
            self._dropped += excess

    async def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(self._flush_interval):
                    await self._stopping.wait()
            except TimeoutError:
                try:
                    await self.flush()
                except sqlite3.Error as exc:
                    self._failures += 1
                    if self._failures == 1:
                        log.warning("decision log: writing a batch failed (will retry): %s", exc)
                else:
                    if self._failures:
                        log.info("decision log: writing again")
                    self._failures = 0

    async def flush(self) -> None:
        """Write what is buffered now, then trim the table to ``size`` rounds."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                async with self.db.transaction() as conn:
                    await conn.executemany(
                        "INSERT INTO decisions (at, mode, inputs, outputs) VALUES (?, ?, ?, ?)",
                        batch,
                    )
                    await conn.execute(
                        "DELETE FROM decisions WHERE id <= (SELECT MAX(id) FROM decisions) - ?",
                        (self.size,),
                    )
            except BaseException:
                self._pending[:0] = batch  # keep them for the next try
                raise
            if self._dropped:
                log.info("decision log: caught up (%d rounds were dropped)", self._dropped)
                self._dropped = 0

    async def decisions(
        self, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[Decision]:
        """Stored rounds with ``since <= at < until``, oldest first (buffered ones included)."""
        await self.flush()
        rows = await self._page(since, until, after_id=0, limit=-1 if limit is None else limit)
        return [Decision(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4])) for r in rows]

    async def export_csv(
        self, out: TextIO, *, since: float | None = None, until: float | None = None
    ) -> int:
        """Write rounds with ``since <= at < until`` to ``out`` as CSV; return the row count.

        Columns: ``id, at`` (POSIX s), ``time_utc`` (ISO 8601), ``mode``, then ``inputs`` and
        ``outputs`` as JSON objects. Rows are fetched in pages, so a day of rounds does not
        have to fit in memory.
        """
        await self.flush()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        last_id = 0
        count = 0
        while rows := await self._page(since, until, after_id=last_id, limit=_PAGE):
            for row in rows:
                stamp = datetime.fromtimestamp(row[1], UTC).isoformat(timespec="milliseconds")
                writer.writerow((row[0], f"{row[1]:.3f}", stamp, row[2], row[3], row[4]))
            count += len(rows)
            last_id = rows[-1][0]
        return count

    async def newest_window_start(self, limit: int, until: float | None = None) -> float | None:
        """The ``at`` of the oldest of the newest ``limit`` rounds before ``until`` (None: the
        log has none), buffered rounds included: where to start reading the newest ``limit``
        rounds without reading the whole log (a day of rounds is 86 400 rows)."""
        await self.flush()
        cursor = await self.db.conn.execute(
            "SELECT MIN(at) FROM (SELECT at FROM decisions WHERE (? IS NULL OR at < ?)"
            " ORDER BY id DESC LIMIT ?)",
            (until, until, limit),
        )
        row = await cursor.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def _page(
        self, since: float | None, until: float | None, *, after_id: int, limit: int
    ) -> list[tuple[int, float, str, str, str]]:
        cursor = await self.db.conn.execute(
            "SELECT id, at, mode, inputs, outputs FROM decisions"
            " WHERE (? IS NULL OR at >= ?) AND (? IS NULL OR at < ?) AND id > ?"
            " ORDER BY id LIMIT ?",
            (since, since, until, until, after_id, limit),
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in await cursor.fetchall()]


# --------------------------------------------------------------------------------------------
# Sampling the stored rounds (the energy page's day before a restart): index seeks only


async def id_bounds(db: Database) -> tuple[int, int] | None:
    """The smallest and largest stored round id (None: the table is empty)."""
    rows = await db.conn.execute_fetchall("SELECT MIN(id), MAX(id) FROM decisions")
    low, high = next(iter(rows), (None, None))
    return None if low is None or high is None else (int(low), int(high))


async def first_id_at(db: Database, low: int, high: int, at: float) -> int | None:
    """The smallest id in ``low..high`` whose round is at or after ``at`` (None: none is).

    Ids grow with time, so this is a binary search on the id, one index seek per step.
    """
    found: int | None = None
    while low <= high:
        middle = (low + high) // 2
        rows = await db.conn.execute_fetchall(
            "SELECT id, at FROM decisions WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
        )
        row = next(iter(rows), None)
        if row is None:
            high = middle - 1
            continue
        row_id, row_at = int(row[0]), float(row[1])
        if row_at >= at:
            found = row_id
            high = middle - 1
        else:
            low = row_id + 1
    return found


async def inputs_of(db: Database, ids: Sequence[int]) -> list[tuple[int, float, str]]:
    """``(id, at, inputs JSON)`` of the stored rounds among ``ids`` (at most a few hundred)."""
    marks = ",".join("?" * len(ids))
    rows = await db.conn.execute_fetchall(
        f"SELECT id, at, inputs FROM decisions WHERE id IN ({marks}) ORDER BY id",  # noqa: S608
        tuple(ids),
    )
    return [(int(r[0]), float(r[1]), str(r[2])) for r in rows]


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(_finite(value), separators=(",", ":"), allow_nan=False, default=str)
