"""The site's event journal: one persistent, bounded record of what happened, for everyone.

Sessions started and stopped, cards refused, chargers connecting and going away, faults, the
meter lost and restored, the site limit changing (the live events of
:mod:`edgegw.livestate`), handshakes refused for their URL, and what operators and the gateway
itself record (``Store.event``: probes, commissioning, caretaker changes, certificates). All of
it lands in the database's ``events`` table, so ``edgegw events`` shows it after a restart.

An SD card is the disk: nothing is written per event. :meth:`Journal.record` only appends to
a bounded list in memory (and tells listeners, such as ``edgegw events --follow``); a writer
task writes what gathered in one transaction every :data:`FLUSH_INTERVAL` seconds, and on
close. The table keeps the newest :data:`EVENTS_KEPT` rows. Readers see the written rows and
the ones still in memory (:meth:`Journal.read`); without a daemon, :func:`read_events` reads
the table. A disk that refuses writes loses journal entries (said once a minute), never the
gateway's work: at most :data:`MAX_PENDING` entries wait in memory, the oldest go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from edgegw.tasks import TaskOwner

if TYPE_CHECKING:
    from edgegw.livestate import LiveChange, LiveEvent
    from edgegw.store.db import Database

log = logging.getLogger(__name__)

FLUSH_INTERVAL: Final = 10.0
"""Seconds between two writes of the entries recorded since the last one."""
MAX_PENDING: Final = 20000
"""Entries kept in memory while the disk refuses writes; beyond, the oldest are dropped."""
WRITE_AT: Final = 500
"""Entries that make the writer write before its interval (a whole site connecting at start)."""
EVENTS_KEPT: Final = 10000
"""Rows the ``events`` table keeps (the oldest are deleted after each write)."""
_WARN_EVERY: Final = 60.0

JournalListener = Callable[["JournalEntry"], None]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One thing that happened; ``id`` is the table's row id (None while still in memory)."""

    at: float
    kind: str
    message: str
    charger_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "kind": self.kind,
            "charger": self.charger_id,
            "message": self.message,
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which entries a reader wants: kinds (a kind ``session`` matches ``session_started``
    and ``session_stopped``), one charger, and a time window."""

    kinds: Collection[str] = ()
    charger_id: str | None = None
    since: float | None = None
    until: float | None = None

    def matches(self, entry: JournalEntry) -> bool:
        if self.kinds and not any(_kind_matches(k, entry.kind) for k in self.kinds):
            return False
        if self.charger_id is not None and entry.charger_id != self.charger_id:
            return False
        if self.since is not None and entry.at < self.since:
            return False
        return self.until is None or entry.at <= self.until


def _kind_matches(wanted: str, kind: str) -> bool:
    return kind == wanted or kind.startswith(wanted + "_")


class Journal:
    """The daemon's event journal on ``db``; :meth:`start` it, always :meth:`close` it."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval: float = FLUSH_INTERVAL,
        max_pending: int = MAX_PENDING,
        keep: int = EVENTS_KEPT,
    ) -> None:
        self.db = db
        self._clock = clock
        self._flush_interval = flush_interval
        self._keep = keep
        self._pending: deque[JournalEntry] = deque(maxlen=max_pending)
        self._dropped = 0
        self._warned_at: float | None = None
        self._listeners: list[JournalListener] = []
        self._tasks = TaskOwner("journal")
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self.writes = 0
        """Transactions written (one per flush that had entries; for tests and benches)."""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._writer_task = self._tasks.supervise(self._writer, "writer")

    async def close(self) -> None:
        """Write what is left, then stop: a write under way is finished, not cancelled (a
        cancelled commit may still land, and the batch would be written twice)."""
        self._stopping.set()
        self._wake.set()
        if self._writer_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(self._flush_interval + 10):
                    await asyncio.shield(self._writer_task)
        await self._tasks.close("journal closing")
        with contextlib.suppress(sqlite3.Error):
            await self.flush()

    async def _writer(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()  # many entries, or stopping
            self._wake.clear()
            await self.flush()

    # ------------------------------------------------------------ recording

    def record(
        self,
        kind: str,
        message: str,
        *,
        charger_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> JournalEntry:
        """Keep an entry (in memory until the next write) and tell the listeners."""
        entry = JournalEntry(self._clock(), kind, message, charger_id, dict(data or {}))
        if len(self._pending) == self._pending.maxlen:
            self._dropped += 1
            self._warn(f"the journal's queue is full ({len(self._pending)} entries)")
        self._pending.append(entry)
        if len(self._pending) >= WRITE_AT:
            self._wake.set()
        for listener in tuple(self._listeners):
            try:
                listener(entry)
            except Exception:  # a listener's bug must not reach whoever recorded
                log.exception("journal listener %r failed", listener)
        return entry

    async def event(
        self,
        kind: str,
        message: str,
        *,
        charger_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """:meth:`record` with ``Store.event``'s signature (an
        :class:`~edgegw.store.events.EventRecorder`): nothing is written here."""
        self.record(kind, message, charger_id=charger_id, data=data)

    def on_record(self, listener: JournalListener) -> Callable[[], None]:
        """Call ``listener`` with every new entry (it must return at once); returns an
        unsubscriber."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def live_listener(self, change: LiveChange) -> None:
        """A :class:`~edgegw.livestate.LiveState` listener: its events go in the journal."""
        event = change.event
        if event is not None:
            entry = describe_live_event(event)
            self.record(entry.kind, entry.message, charger_id=entry.charger_id, data=entry.data)

    async def flush(self) -> None:
        """Write what was recorded since the last write, in one transaction."""
        if not self._pending:
            return
        batch = list(self._pending)
        try:
            async with self.db.transaction() as conn:
                await conn.executemany(
                    "INSERT INTO events (at, kind, charger_id, message, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            e.at,
                            _text(e.kind),
                            _text(e.charger_id),
                            _text(e.message),
                            _encode(e.data),
                        )
                        for e in batch
                    ],
                )
                await conn.execute(
                    "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                    (self._keep,),
                )
        except sqlite3.OperationalError as exc:
            self._warn(f"journal entries not written yet: {exc}")
            return
        # Entries recorded during the write stay for the next one. (A full queue may have
        # pushed some of the batch out meanwhile: only what is still at its head goes.)
        written = {id(e) for e in batch}
        while self._pending and id(self._pending[0]) in written:
            self._pending.popleft()
        self.writes += 1

    def _warn(self, what: str) -> None:
        now = self._clock()
        if self._warned_at is None or now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("%s (%d entries dropped so far)", what, self._dropped)

    # ------------------------------------------------------------ reading

    def pending(self) -> list[JournalEntry]:
        """Entries not written yet, oldest first."""
        return list(self._pending)

    async def read(self, limit: int = 100, where: EventFilter | None = None) -> list[JournalEntry]:
        """The newest ``limit`` entries that match, newest first (written or not)."""
        where = where or EventFilter()
        waiting = [e for e in reversed(self._pending) if where.matches(e)][:limit]
        written = (
            await read_events(self.db, limit - len(waiting), where) if len(waiting) < limit else []
        )
        return waiting + written


async def read_events(
    db: Database, limit: int, where: EventFilter | None = None
) -> list[JournalEntry]:
    """The newest ``limit`` rows of the ``events`` table that match, newest first."""
    if limit <= 0:
        return []
    where = where or EventFilter()
    clauses: list[str] = []
    params: list[Any] = []
    if where.kinds:
        ors = []
        for kind in where.kinds:
            ors.append("(kind = ? OR kind LIKE ? ESCAPE '\\')")
            params += [kind, _like_prefix(kind) + "\\_%"]
        clauses.append("(" + " OR ".join(ors) + ")")
    if where.charger_id is not None:
        clauses.append("charger_id = ?")
        params.append(where.charger_id)
    if where.since is not None:
        clauses.append("at >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append("at <= ?")
        params.append(where.until)
    sql = "SELECT id, at, kind, charger_id, message, data FROM events"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    # By time: rows written at once (Store.event) and batches written later interleave by id.
    sql += " ORDER BY at DESC, id DESC LIMIT ?"
    params.append(limit)
    rows = await db.conn.execute_fetchall(sql, params)
    return [
        JournalEntry(
            at=float(r[1]),
            kind=str(r[2]),
            message=str(r[4]),
            charger_id=None if r[3] is None else str(r[3]),
            data=_decode(r[5]),
            id=int(r[0]),
        )
        for r in rows
    ]


# --------------------------------------------------------------------------------------------
# Live events as journal entries


def describe_live_event(event: LiveEvent) -> JournalEntry:
    """A live event as a journal entry with a sentence a caretaker reads."""
    data = {k: v for k, v in event.data.items() if v is not None}
    if event.connector is not None:
        data["connector"] = event.connector
    kind = event.kind.value
    return JournalEntry(event.at, kind, _sentence(kind, event), event.charger_id, data)


def _sentence(kind: str, event: LiveEvent) -> str:
    d = event.data
    on = f" on connector {event.connector}" if event.connector is not None else ""
    card = _card(d)
    if kind == "session_started":
        tx = f" (transaction {d['transaction_id']})" if d.get("transaction_id") is not None else ""
        return f"session started{on} with {card}{tx}"
    if kind == "session_stopped":
        parts = [f"session stopped{on}"]
        if d.get("energy_wh") is not None:
            parts.append(f"{float(d['energy_wh']) / 1000:.2f} kWh")
        if d.get("duration_s") is not None:
            parts.append(_duration(float(d["duration_s"])))
        if d.get("reason"):
            parts.append(f"reason {d['reason']}")
        return ", ".join(parts)
    if kind == "card_refused":
        during = f" at {d['during']}" if d.get("during") else ""
        return f"{card} refused ({d.get('status', '?')}){during}{on}"
    if kind == "meter_lost":
        reason = f": {_clip(str(d['reason']))}" if d.get("reason") else ""
        return f"meter {d.get('meter', '')} lost{reason}; load capping uses the fallback limits"
    if kind == "meter_restored":
        return f"meter {d.get('meter', '')} reads again"
    if kind == "limit_changed":
        return f"site limit {_amps(d.get('previous_limit_a'))} -> {_amps(d.get('limit_a'))}"
    if kind == "charger_connected":
        return "connected"
    if kind == "charger_disconnected":
        return "disconnected"
    if kind == "charger_fault":
        error = d.get("error_code")
        extra = f" ({error})" if error and error != "NoError" else ""
        info = f": {_clip(str(d['info']))}" if d.get("info") else ""
        return f"connector {event.connector} {d.get('status', 'faulted')}{extra}{info}"
    return kind.replace("_", " ")


def _card(data: Mapping[str, Any]) -> str:
    tag = data.get("id_tag")
    if tag is None:
        return "no card"
    owner = data.get("owner")
    return f"card {tag}" + (f" ({owner})" if owner else "")


def _amps(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, Iterable) and not isinstance(value, str):
        parts = [f"{float(v):g}" for v in value]
        return ("/".join(parts) if len(set(parts)) > 1 else parts[0]) + " A" if parts else "none"
    return f"{float(value):g} A"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# Encoding


def _text(value: str | None) -> str | None:
    """Text SQLite can store: lone surrogates (from a peer) escaped."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _encode(data: Mapping[str, Any]) -> str | None:
    if not data:
        return None
    return json.dumps(data, separators=(",", ":"), default=str, ensure_ascii=True)


def _decode(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    try:
        decoded = json.loads(value)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _like_prefix(kind: str) -> str:
    return kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
