"""Persistence of everything cards: installer cards, the cloud list mirror, the auth cache, and
what the gateway knows about each charger's idTag format and local list.

Tables (schema migration 2): ``cards``, ``cloud_list`` (with a 2.x entry's ``token_type``
since migration 7; its version in ``settings`` under
``cloud_list_version``), ``auth_cache`` (keyed by the idTag's text and, since migration 8,
``literal``: an answer about a 2.x token that is no card UID), and the ``chargers`` columns
``idtag_format`` /
``idtag_format_seen`` (the format detected for a charger set to ``auto``),
``local_list_version`` (the list version the gateway last pushed to the charger) and
``capabilities`` (a JSON object; this module owns its ``local_list`` and ``local_list_pushed``
members and leaves the others alone).

Charger groups, card groups and shares (:class:`~edgegw.auth.access.Access`) are one JSON
document in ``settings`` under ``card_access``: a site has a few groups and shares, and they are
read once at start and written whole on each change.

Bulk paths (:meth:`CardStore.save_cards`, a Full cloud list) write in one transaction with
``executemany``, so 100,000 cards take a fraction of a second, and are all-or-nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiosqlite

from edgegw.auth.access import Access
from edgegw.auth.cache import CacheEntry, CacheKey
from edgegw.auth.cardindex import LiteralToken
from edgegw.auth.cloudlist import listed_card
from edgegw.auth.idtags import CardId, IdTagFormat
from edgegw.auth.locallist import (
    AuthStatus,
    Card,
    CloudEntry,
    IdTagInfo,
    ListUpdate,
    format_datetime,
    parse_datetime,
)
from edgegw.store.db import Database

CLOUD_LIST_VERSION: Final = "cloud_list_version"
"""``settings`` key holding the cloud list mirror's ``listVersion``."""
CARD_ACCESS: Final = "card_access"
"""``settings`` key holding the charger groups, card groups and shares (one JSON document)."""
_CACHE_DELETE: Final = "DELETE FROM auth_cache WHERE id_tag = ? AND literal = ?"

_CARD_COLUMNS: Final = (
    "id_tag, owner, label, status, expiry, parent_id_tag, chargers, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class DetectedFormat:
    """The idTag format detected for a charger configured as ``auto``, and since when."""

    fmt: IdTagFormat
    seen_at: float


@dataclass(frozen=True, slots=True)
class ChargerListState:
    """What the gateway recorded about one charger's local list."""

    version: int | None
    """The list version last pushed to the charger and accepted (None: never)."""
    capabilities: dict[str, Any]
    """The ``local_list`` member of ``capabilities``: what the charger said it supports."""
    pushed: dict[str, Any]
    """The ``local_list_pushed`` member: digest and format of the list last pushed in full."""


class CardStore:
    """Card persistence on a :class:`~edgegw.store.db.Database` (one per daemon)."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock

    # ------------------------------------------------------------ installer cards

    async def load_cards(self) -> list[Card]:
        rows = await self.db.conn.execute_fetchall(
            f"SELECT {_CARD_COLUMNS} FROM cards ORDER BY id_tag"  # noqa: S608 - constant
        )
        return [_card_from_row(tuple(row)) for row in rows]

    async def save_card(self, card: Card) -> None:
        """Insert or replace one card."""
        await self.save_cards([card])

    async def save_cards(self, cards: Iterable[Card], *, replace: bool = False) -> None:
        """Insert or replace ``cards`` in one transaction; ``replace`` first deletes all others."""
        rows = [_card_to_row(card) for card in cards]
        async with self.db.transaction() as conn:
            if replace:
                await conn.execute("DELETE FROM cards")
            await conn.executemany(
                f"INSERT OR REPLACE INTO cards ({_CARD_COLUMNS})"  # noqa: S608 - constant
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    async def delete_card(self, card_id: CardId) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM cards WHERE id_tag = ?", (card_id.canonical,))
            return cursor.rowcount > 0

    # ------------------------------------------------------------ cloud list mirror

    async def load_cloud_list(self) -> tuple[int, list[CloudEntry]]:
        """The mirror's version and entries (entries that no longer parse are skipped)."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT id_tag, status, expiry, parent_id_tag, token_type FROM cloud_list"
        )
        entries = [
            CloudEntry(id_tag, listed_card(id_tag, kind), _info(status, expiry, parent))
            for id_tag, status, expiry, parent, kind in rows
        ]
        version = await self.get_setting(CLOUD_LIST_VERSION)
        return (0 if version is None else int(version)), entries

    async def apply_cloud_update(self, update: ListUpdate) -> None:
        """Persist an Accepted :class:`ListUpdate` (entries and version) atomically."""
        if update.status != "Accepted":
            raise ValueError(f"only an Accepted update is stored, not {update.status}")
        async with self.db.transaction() as conn:
            if update.full:
                if update.changed:
                    await conn.execute("DELETE FROM cloud_list")
                    await conn.executemany(
                        "INSERT INTO cloud_list (id_tag, status, expiry, parent_id_tag, token_type)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [_cloud_row(e) for e in update.upserts],
                    )
            else:
                await conn.executemany(
                    "DELETE FROM cloud_list WHERE id_tag = ?", [(e.id_tag,) for e in update.deletes]
                )
                await conn.executemany(
                    "INSERT OR REPLACE INTO cloud_list"
                    " (id_tag, status, expiry, parent_id_tag, token_type) VALUES (?, ?, ?, ?, ?)",
                    [_cloud_row(e) for e in update.upserts],
                )
            await _set_setting(conn, CLOUD_LIST_VERSION, str(update.version))

    # ------------------------------------------------------------ auth cache

    async def load_cache(self) -> list[CacheEntry]:
        rows = await self.db.conn.execute_fetchall(
            "SELECT id_tag, status, expiry, parent_id_tag, learned_at, literal FROM auth_cache"
            " ORDER BY learned_at"
        )
        return [
            CacheEntry(
                id_tag, _info(status, expiry, parent), float(learned_at), literal=bool(literal)
            )
            for id_tag, status, expiry, parent, learned_at, literal in rows
        ]

    async def cache_put(self, entry: CacheEntry, evicted: Sequence[CacheKey] = ()) -> None:
        """Write one cache entry and drop the evicted ones, in one transaction."""
        info = entry.info
        async with self.db.transaction() as conn:
            if evicted:
                await conn.executemany(_CACHE_DELETE, [(k, int(lit)) for k, lit in evicted])
            await conn.execute(
                "INSERT OR REPLACE INTO auth_cache"
                " (id_tag, literal, status, expiry, parent_id_tag, learned_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.id_tag,
                    int(entry.literal),
                    info.status.value,
                    None if info.expiry is None else format_datetime(info.expiry),
                    info.parent_id,
                    entry.learned_at,
                ),
            )

    async def cache_delete(self, keys: Sequence[CacheKey]) -> None:
        if not keys:
            return
        async with self.db.transaction() as conn:
            await conn.executemany(_CACHE_DELETE, [(k, int(lit)) for k, lit in keys])

    # ------------------------------------------------------------ chargers

    async def detected_formats(self) -> dict[str, DetectedFormat]:
        rows = await self.db.conn.execute_fetchall(
            "SELECT id, idtag_format, idtag_format_seen FROM chargers"
            " WHERE idtag_format IS NOT NULL"
        )
        out: dict[str, DetectedFormat] = {}
        for charger_id, fmt, seen in rows:
            try:
                out[charger_id] = DetectedFormat(IdTagFormat(fmt), float(seen or 0.0))
            except ValueError:
                continue  # a format this version does not know: detect again
        return out

    async def set_detected_format(self, charger_id: str, fmt: IdTagFormat, seen_at: float) -> None:
        async with self.db.transaction() as conn:
            await self._ensure_charger(conn, charger_id)
            await conn.execute(
                "UPDATE chargers SET idtag_format = ?, idtag_format_seen = ? WHERE id = ?",
                (fmt.value, seen_at, charger_id),
            )

    async def list_state(self, charger_id: str) -> ChargerListState:
        rows = await self.db.conn.execute_fetchall(
            "SELECT local_list_version, capabilities FROM chargers WHERE id = ?", (charger_id,)
        )
        if not rows:
            return ChargerListState(None, {}, {})
        version, raw = next(iter(rows))
        try:
            capabilities = json.loads(raw) if raw else {}
        except ValueError:
            capabilities = {}
        if not isinstance(capabilities, dict):
            capabilities = {}
        return ChargerListState(
            None if version is None else int(version),
            _member(capabilities, "local_list"),
            _member(capabilities, "local_list_pushed"),
        )

    async def set_list_capabilities(self, charger_id: str, capabilities: dict[str, Any]) -> None:
        """Record what the charger said about local list support (``capabilities.local_list``)."""
        await self._set_capability(charger_id, "local_list", capabilities)

    async def set_list_version(
        self, charger_id: str, version: int, pushed: dict[str, Any] | None = None
    ) -> None:
        """Record the version the charger accepted; ``pushed`` describes the whole list
        it now holds (``capabilities.local_list_pushed``), None when that is not known."""
        async with self.db.transaction() as conn:
            await self._ensure_charger(conn, charger_id)
            await conn.execute(
                "UPDATE chargers SET local_list_version = ?,"
                " capabilities = json_set(COALESCE(capabilities, '{}'), '$.local_list_pushed',"
                " json(?)) WHERE id = ?",
                (version, json.dumps(pushed or {}), charger_id),
            )

    async def _set_capability(self, charger_id: str, member: str, value: dict[str, Any]) -> None:
        async with self.db.transaction() as conn:
            await self._ensure_charger(conn, charger_id)
            await conn.execute(
                "UPDATE chargers SET capabilities = json_set(COALESCE(capabilities, '{}'),"
                " ?, json(?)) WHERE id = ?",
                (f"$.{member}", json.dumps(value), charger_id),
            )

    async def _ensure_charger(self, conn: aiosqlite.Connection, charger_id: str) -> None:
        # The proxy records a charger when it connects; this only covers a write that comes
        # first (tests, a race at connect), without touching an existing row.
        now = self._clock()
        await conn.execute(
            "INSERT OR IGNORE INTO chargers (id, first_seen, last_seen) VALUES (?, ?, ?)",
            (charger_id, now, now),
        )

    # ------------------------------------------------------------ groups and shares

    async def load_access(self) -> Access:
        text = await self.get_setting(CARD_ACCESS)
        return Access() if text is None else Access.from_json(json.loads(text))

    async def save_access(self, access: Access) -> None:
        text = json.dumps(access.to_json(), separators=(",", ":"), sort_keys=True)
        async with self.db.transaction() as conn:
            await _set_setting(conn, CARD_ACCESS, text)

    # ------------------------------------------------------------ settings

    async def get_setting(self, key: str) -> str | None:
        rows = await self.db.conn.execute_fetchall(
            "SELECT value FROM settings WHERE key = ?", (key,)
        )
        for (value,) in rows:
            return str(value)
        return None


async def _set_setting(conn: aiosqlite.Connection, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _member(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _info(status: str, expiry: str | None, parent: str | None) -> IdTagInfo:
    return IdTagInfo(
        AuthStatus(status), None if expiry is None else parse_datetime(expiry), parent or None
    )


def _cloud_row(entry: CloudEntry) -> tuple[str, str, str | None, str | None, str | None]:
    info = entry.info
    return (
        entry.id_tag,
        info.status.value,
        None if info.expiry is None else format_datetime(info.expiry),
        info.parent_id,
        entry.card.kind if isinstance(entry.card, LiteralToken) else None,
    )


def _card_to_row(card: Card) -> tuple[Any, ...]:
    return (
        card.id.canonical,
        card.owner,
        card.label,
        card.status.value,
        None if card.expiry is None else format_datetime(card.expiry),
        card.parent_id,
        None if card.chargers is None else json.dumps(sorted(card.chargers)),
        card.created_at,
        card.updated_at,
    )


def _card_from_row(row: tuple[Any, ...]) -> Card:
    id_tag, owner, label, status, expiry, parent, chargers, created, updated = row
    return Card(
        id=CardId.from_idtag(id_tag),
        owner=owner,
        label=label,
        status=AuthStatus(status),
        expiry=None if expiry is None else parse_datetime(expiry),
        chargers=None if chargers is None else frozenset(json.loads(chargers)),
        parent_id=parent,
        created_at=float(created),
        updated_at=float(updated),
    )
