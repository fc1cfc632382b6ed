"""The SQLite database: opened through an async factory, migrated, checked, closed cleanly.

One aiosqlite connection (one worker thread) is the only writer. WAL keeps readers (the CLI)
off the writer's back; ``synchronous=NORMAL`` is the default and callers that must survive a
power cut (the outbox, see the durability rule) commit with ``durable=True`` (``FULL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite

from edgegw.store.schema import MIGRATIONS

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The database cannot be used (corrupt, too new, unreadable)."""


class StoreSchemaError(StoreError):
    """The database lacks tables, columns or indexes its schema version promises (dropped or
    altered by hand, or damaged): restarting cannot help, an operator must restore it."""


class BatchAborted(sqlite3.OperationalError):
    """A batch's transaction is gone: SQLite rolled all of it back after a statement failed
    (disk full, I/O error, out of memory). Nothing any of its writes did is on disk."""


_BATCHING: ContextVar[object] = ContextVar("edgegw_batching", default=None)
"""The token of the :meth:`Database.batch` the current context runs in: a task started inside
a batch inherits it, so its write is refused instead of waiting for the batch for ever."""


class Database:
    """A migrated aiosqlite connection; use :meth:`open`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # One connection, many coroutines: write transactions take turns.
        self._write_lock = asyncio.Lock()
        self._batch_task: asyncio.Task[Any] | None = None
        """The task whose writes share one transaction (see :meth:`batch`), if any."""
        self._batch_token: object = None
        """The running batch's own token (in the context of the tasks started inside it)."""
        self._batch_lost: BaseException | None = None
        """Why the running batch's transaction was rolled back by SQLite, if it was."""

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating if needed) and migrate the database at ``path``."""
        if str(path) != ":memory:":
            await asyncio.to_thread(_create_private, path)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        db = cls(conn, path)
        try:
            await db._prepare()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            await conn.close()
            if not _is_damage(exc):
                raise
            raise StoreError(
                f"{path} is damaged ({_reason(exc)}); move it aside to start with an empty one, "
                "or restore a backup"
            ) from exc
        except BaseException:
            await conn.close()
            raise
        return db

    async def _prepare(self) -> None:
        try:
            row = await (await self.conn.execute("PRAGMA quick_check")).fetchone()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            # Flipped bytes can put invalid UTF-8 into SQLite's own error text (a table name,
            # a statement of the schema): Python then raises UnicodeDecodeError instead.
            raise StoreError(
                f"{self.path} is not a usable SQLite database ({_reason(exc)}); move it aside "
                "to start with an empty one, or restore a backup"
            ) from exc
        if row is None or row[0] != "ok":
            raise StoreError(
                f"{self.path} failed its integrity check ({row[0] if row else 'no answer'}); "
                "move it aside to start with an empty one, or restore a backup"
            )
        await self.conn.execute("PRAGMA journal_mode=WAL")
        await self.conn.execute("PRAGMA synchronous=NORMAL")
        await self.conn.execute("PRAGMA foreign_keys=ON")
        await self.conn.execute("PRAGMA busy_timeout=5000")
        await self._migrate()
        await self._check_schema()

    async def _check_schema(self) -> None:
        """Every table, column and index the migrations create must be there: a database
        missing its outbox would otherwise start and fail every charger's connection."""
        expected = await asyncio.to_thread(_expected_schema)
        rows = await (await self.conn.execute(_SCHEMA_QUERY)).fetchall()
        missing = sorted(expected - _schema_parts(rows))
        if missing:
            shown = ", ".join(f"{kind} {name}" for kind, name in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise StoreSchemaError(
                f"{self.path} is missing part of its schema (version {len(MIGRATIONS)}): "
                f"{shown}{more}; restore a backup, or move it aside to start with an empty one"
            )

    async def _migrate(self) -> None:
        row = await (await self.conn.execute("PRAGMA user_version")).fetchone()
        version = int(row[0]) if row else 0
        target = len(MIGRATIONS)
        if version > target:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this edgegw "
                f"understands ({target}); upgrade edgegw or restore a matching backup"
            )
        if version == target:
            return
        log.info("migrating database %s from schema %d to %d", self.path, version, target)
        await self.conn.execute("BEGIN IMMEDIATE")
        try:
            for step in MIGRATIONS[version:]:
                for statement in _statements(step):
                    await self.conn.execute(statement)
            await self.conn.execute(f"PRAGMA user_version={target}")
            await self.conn.execute("COMMIT")
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """One write transaction for the writes the calling task makes until it leaves: each
        of its :meth:`transaction` blocks becomes a SAVEPOINT of it, so one that fails leaves
        nothing and the others are committed together (one commit, each page written once).

        Only the calling task's own transactions join; other tasks wait for the commit, as
        for any transaction. So it must not wait, inside, for another task that writes: a
        task started inside the batch (``asyncio.wait_for`` on Python 3.11 starts one) is
        refused with RuntimeError when it writes, instead of waiting for ever.

        If a statement error makes SQLite roll back the whole transaction (disk full, I/O
        error), the write that met it raises :class:`BatchAborted` (caused by that error),
        later writes of the batch are refused with it, and so is leaving the batch: no write
        runs outside a transaction, and everything the batch wrote before is gone.
        """
        async with self.transaction():
            self._batch_task = asyncio.current_task()
            self._batch_lost = None
            self._batch_token = object()
            token = _BATCHING.set(self._batch_token)
            try:
                yield
                self._check_batch()
            finally:
                _BATCHING.reset(token)
                self._batch_task = None
                self._batch_token = None
                self._batch_lost = None

    @asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction; ``durable`` commits with ``synchronous=FULL``. Inside a
        :meth:`batch` of the same task: a SAVEPOINT of it (``durable`` may not be asked)."""
        if self._batch_task is not None:
            if asyncio.current_task() is self._batch_task:
                if durable:
                    raise RuntimeError("a durable write cannot join a batch (it commits later)")
                async with self._savepoint() as conn:
                    yield conn
                return
            if _BATCHING.get() is self._batch_token:
                raise RuntimeError(
                    "a task started inside a batch cannot write: it would wait for the batch's "
                    "commit, and the batch for it"
                )
        async with self._write_lock:
            try:
                if durable:
                    # One hand-off to SQLite's thread, not two: a replay commits hundreds of
                    # times a second and each hand-off costs the event loop a wake-up. (Not at
                    # the COMMIT: executescript commits a pending transaction before its script.)
                    await self.conn.executescript("PRAGMA synchronous=FULL; BEGIN IMMEDIATE")
                else:
                    await self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
            except BaseException:
                await self._rollback()
                raise
            else:
                await self.conn.execute("COMMIT")
            finally:
                if durable:
                    await self.conn.execute("PRAGMA synchronous=NORMAL")

    def _check_batch(self) -> None:
        """Raise :class:`BatchAborted` if SQLite rolled the batch's transaction back."""
        if self._batch_lost is None and not self.conn.in_transaction:
            self._batch_lost = sqlite3.OperationalError("the transaction was rolled back")
        if self._batch_lost is not None:
            raise BatchAborted(
                f"rolled back with its batch: {self._batch_lost}"
            ) from self._batch_lost

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[aiosqlite.Connection]:
        self._check_batch()  # a SAVEPOINT outside a transaction would start (and commit) one
        await self.conn.execute("SAVEPOINT batched_write")
        try:
            yield self.conn
        except BaseException as exc:
            if not self.conn.in_transaction:
                # A statement error made SQLite abandon the whole transaction (disk full, I/O
                # error): there is no savepoint to go back to, the batch is lost.
                if self._batch_lost is None:
                    self._batch_lost = exc
                if isinstance(exc, Exception) and not isinstance(exc, BatchAborted):
                    raise BatchAborted(str(exc)) from exc
                raise
            await asyncio.shield(self.conn.execute("ROLLBACK TO batched_write"))
            await asyncio.shield(self.conn.execute("RELEASE batched_write"))
            raise
        else:
            self._check_batch()  # the job's own error handling may have hidden the loss
            await self.conn.execute("RELEASE batched_write")

    async def _rollback(self) -> None:
        # aiosqlite runs statements in order on its own thread, even when the awaiting task was
        # cancelled: a cancelled BEGIN may still run, so always roll back, shielded, and accept
        # "no transaction is active" when it did not.
        with contextlib.suppress(sqlite3.OperationalError):
            await asyncio.shield(self.conn.execute("ROLLBACK"))

    async def close(self) -> None:
        try:
            await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("checkpoint on close failed: %s", exc)
        await self.conn.close()


# Every table with its columns, and every named index (SQLite's own objects left out). Names
# are read as bytes: a damaged one is then reported missing instead of failing to decode.
_SCHEMA_QUERY = """
    SELECT m.type, CAST(m.name AS BLOB), CAST(c.name AS BLOB) FROM sqlite_master AS m
    LEFT JOIN pragma_table_info(m.name) AS c ON m.type = 'table'
    WHERE m.type IN ('table', 'index') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
"""


def _schema_parts(rows: Iterable[Any]) -> set[tuple[str, str]]:
    parts: set[tuple[str, str]] = set()
    for kind, raw_name, raw_column in rows:
        name = bytes(raw_name).decode("utf-8", "replace")
        parts.add((kind, name))
        if raw_column is not None:
            parts.add(("column", f"{name}.{bytes(raw_column).decode('utf-8', 'replace')}"))
    return parts


def _expected_schema() -> set[tuple[str, str]]:
    """What the migrations build, read from a scratch in-memory database (a few ms)."""
    conn = sqlite3.connect(":memory:")
    try:
        for step in MIGRATIONS:
            for statement in _statements(step):
                conn.execute(statement)
        return _schema_parts(conn.execute(_SCHEMA_QUERY).fetchall())
    finally:
        conn.close()


def _is_damage(exc: sqlite3.DatabaseError | UnicodeDecodeError) -> bool:
    """Damage on disk, not a busy or read-only database (OperationalError and friends)."""
    return isinstance(exc, UnicodeDecodeError) or type(exc) is sqlite3.DatabaseError


def _reason(exc: sqlite3.DatabaseError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError) and isinstance(exc.object, bytes):
        return exc.object.decode("utf-8", "replace")
    return str(exc)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no ';' inside our literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def _create_private(path: Path) -> None:
    """Create the directory and an empty database file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
