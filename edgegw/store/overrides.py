"""What a caretaker changed at runtime, per charger, kept across daemon restarts.

A caretaker may lower a charger's maximum current or switch it to free charging from the
TUI; neither belongs in the installer's configuration file (the caretaker cannot edit it, and
a reload must not undo their choice), so both live in the database's ``settings`` table
(schema migration 2), one row per charger and setting:

- ``charger.<id>.max_current_a``: the override in amperes, as JSON (absent: none);
- ``charger.<id>.free_charging``: ``true`` (absent: off).

The daemon reads them once at start (:meth:`ChargerOverrides.load`) and writes each change
at once, so a restart right after a change keeps it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

from edgegw.store.db import Database

log = logging.getLogger(__name__)

_PREFIX = "charger."
_MAX_CURRENT = "max_current_a"
_FREE = "free_charging"


@dataclass(frozen=True, slots=True)
class ChargerOverride:
    """One charger's runtime settings."""

    max_current_a: float | None = None
    free_charging: bool = False


def _key(charger_id: str, name: str) -> str:
    return f"{_PREFIX}{charger_id}.{name}"


class ChargerOverrides:
    """The caretaker's per-charger settings in the ``settings`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self) -> dict[str, ChargerOverride]:
        """Every charger with a setting. A row that cannot be read is skipped (logged), so a
        hand-edited database never stops the daemon."""
        rows = await self.db.conn.execute_fetchall(
            "SELECT key, value FROM settings WHERE key LIKE ?", (_PREFIX + "%",)
        )
        found: dict[str, ChargerOverride] = {}
        for key, value in rows:
            charger_id, _, name = str(key)[len(_PREFIX) :].rpartition(".")
            if not charger_id or name not in (_MAX_CURRENT, _FREE):
                continue
            try:
                decoded = json.loads(value)
            except ValueError:
                log.warning("ignoring unreadable setting %s = %r", key, value)
                continue
            old = found.get(charger_id, ChargerOverride())
            if name == _MAX_CURRENT:
                if isinstance(decoded, bool) or not isinstance(decoded, int | float):
                    log.warning("ignoring setting %s = %r: not a number", key, value)
                    continue
                amps = float(decoded)
                if not math.isfinite(amps) or amps < 0:
                    log.warning("ignoring setting %s = %r: not a current", key, value)
                    continue
                found[charger_id] = ChargerOverride(amps, old.free_charging)
            elif decoded is True:
                found[charger_id] = ChargerOverride(old.max_current_a, True)
        return found

    async def set_max_current(self, charger_id: str, max_current_a: float | None) -> None:
        """Keep ``charger_id``'s maximum current override (None: remove it)."""
        value = None if max_current_a is None else json.dumps(float(max_current_a))
        await self._put(_key(charger_id, _MAX_CURRENT), value)

    async def set_free_charging(self, charger_id: str, enabled: bool) -> None:
        """Keep whether ``charger_id`` is set to free charging."""
        await self._put(_key(charger_id, _FREE), "true" if enabled else None)

    async def _put(self, key: str, value: str | None) -> None:
        async with self.db.transaction() as conn:
            if value is None:
                await conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                await conn.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
