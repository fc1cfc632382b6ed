"""Read-only access to the gateway's database, for the CLI and for queries that must not hold
up the daemon's writer: never creates, never migrates, says clearly what is wrong."""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import aiosqlite

from edgegw.store.db import StoreError
from edgegw.store.schema import MIGRATIONS

SCHEMA_NEEDED: Final = 4
"""The schema version that has everything read here (``transaction_ids``, ``cards``, the
stored price of a session)."""


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


async def schema_version(path: Path) -> int:
    """The schema version of the database at ``path``, opened read-only (raises
    :class:`~edgegw.store.db.StoreError` when it cannot be read)."""
    async with open_read_only(path) as conn, conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0
