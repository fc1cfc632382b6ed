"""What a probe and a commissioning run found out about a charger, kept in its store row.

The ``chargers.capabilities`` column (schema migration 2) is a JSON object shared by several
parts, each owning its members: :mod:`edgegw.store.cards` owns ``local_list`` and
``local_list_pushed``; this module owns ``probe`` (the last ``edgegw chargers probe``: feature
profiles, smart-charging keys, measurands, the hardware profile that fits) and
``commissioning`` (a summary of the last ``edgegw commission``: when, passed or not, which
steps failed). Each write replaces only its own member, in one statement, so parts never
overwrite each other. The full commissioning report goes to the events table too (kind
``commissioning``), where the caretaker's screen shows it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

from edgegw.store.db import Database

PROBE: Final = "probe"
COMMISSIONING: Final = "commissioning"


class CapabilityStore:
    """Reads and writes this module's members of ``chargers.capabilities``."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock

    async def set_probe(self, charger_id: str, probe: dict[str, Any]) -> None:
        """Record the result of a probe (replaces the previous one)."""
        await self._set(charger_id, PROBE, probe)

    async def probe(self, charger_id: str) -> dict[str, Any] | None:
        """The last probe recorded for ``charger_id`` (None: never probed)."""
        return (await self._all(charger_id)).get(PROBE)

    async def set_commissioning(self, charger_id: str, summary: dict[str, Any]) -> None:
        """Record the summary of the last commissioning run."""
        await self._set(charger_id, COMMISSIONING, summary)

    async def commissioning(self, charger_id: str) -> dict[str, Any] | None:
        return (await self._all(charger_id)).get(COMMISSIONING)

    async def _all(self, charger_id: str) -> dict[str, Any]:
        rows = await self.db.conn.execute_fetchall(
            "SELECT capabilities FROM chargers WHERE id = ?", (charger_id,)
        )
        raw = next(iter(rows), (None,))[0]
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if isinstance(v, dict)}

    async def _set(self, charger_id: str, member: str, value: dict[str, Any]) -> None:
        now = self._clock()
        async with self.db.transaction() as conn:
            # The proxy records a charger when it connects; this covers a write that comes
            # first without touching an existing row.
            await conn.execute(
                "INSERT OR IGNORE INTO chargers (id, first_seen, last_seen) VALUES (?, ?, ?)",
                (charger_id, now, now),
            )
            await conn.execute(
                "UPDATE chargers SET capabilities = json_set(COALESCE(capabilities, '{}'),"
                " ?, json(?)) WHERE id = ?",
                (f"$.{member}", json.dumps(value), charger_id),
            )
