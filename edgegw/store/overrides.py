"""What a caretaker changed at runtime, per charger, kept across daemon restarts.

A caretaker may lower a charger's maximum current or switch it to free charging from the
TUI; neither belongs in the installer's configuration file (the caretaker cannot edit it, and
a reload must not undo their choice), so both live in the database's ``settings`` table
(schema migration 2), one row per charger and setting:

- ``charger.<id>.max_current_a``: the override in amperes, as JSON (absent: none);
- ``charger.<id>.free_charging``: ``true`` (absent: off);
- ``site.temporary_limit``: a temporary site limit (an MQTT command: a building manager's
  peak shaving) and when it ends, as JSON ``{"limit_a": [L1, L2, L3], "ends_at": <Unix s>}``
  (``ends_at`` null: until ended); kept until its end so that a restart does not lift it.

The daemon reads them once at start (:meth:`ChargerOverrides.load`,
:meth:`ChargerOverrides.temporary_limit`) and writes each change at once, so a restart right
after a change keeps it.
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
_TEMPORARY_LIMIT = "site.temporary_limit"


@dataclass(frozen=True, slots=True)
class TemporaryLimit:
    """A temporary site limit per phase and when it ends (Unix seconds; None: until ended)."""

    limit_a: tuple[float, float, float]
    ends_at: float | None


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

    async def set_temporary_limit(self, limit: TemporaryLimit | None) -> None:
        """Keep the site's temporary limit (None: it ended)."""
        value = None
        if limit is not None:
            value = json.dumps({"limit_a": list(limit.limit_a), "ends_at": limit.ends_at})
        await self._put(_TEMPORARY_LIMIT, value)

    async def temporary_limit(self) -> TemporaryLimit | None:
        """The temporary site limit kept, or None (also for a row that cannot be read)."""
        rows = list(
            await self.db.conn.execute_fetchall(
                "SELECT value FROM settings WHERE key = ?", (_TEMPORARY_LIMIT,)
            )
        )
        if not rows:
            return None
        try:
            decoded = json.loads(rows[0][0])
            amps = [float(a) for a in decoded["limit_a"]]
            ends = decoded["ends_at"]
            ends_at = None if ends is None else float(ends)
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring unreadable setting %s = %r", _TEMPORARY_LIMIT, rows[0][0])
            return None
        if len(amps) != 3 or not all(math.isfinite(a) and a >= 0 for a in amps):
            log.warning("ignoring setting %s = %r: not a limit", _TEMPORARY_LIMIT, rows[0][0])
            return None
        return TemporaryLimit((amps[0], amps[1], amps[2]), ends_at)

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
