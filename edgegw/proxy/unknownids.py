"""Unknown identities recorded for the installer (``edgegw chargers pending``): a burst, then so
many a minute, at most so many pending, logged at most once a minute with a count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from edgegw.security.quiet_log import QuietLog
from edgegw.security.throttle import TokenBucket
from edgegw.store.store import ChargerRow, Store

# Unknown identities recorded for the installer: a burst, then so many a minute, at most so many.
UNKNOWN_BURST: Final = 10


UNKNOWN_PER_MINUTE: Final = 10


MAX_PENDING_IDENTITIES: Final = 100


class UnknownRecorder:
    """Records refused unknown identities for the installer, at a bounded rate and number.

    A flood of made-up identities from rotating addresses must not become thousands of pending
    rows: a burst of new identities is recorded, then ``UNKNOWN_PER_MINUTE``, and none once
    ``MAX_PENDING_IDENTITIES`` are pending (the count is read again from the database, at most
    once a minute, so that approving or removing some makes room). An identity already recorded
    is updated at most once a minute.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._new = TokenBucket(UNKNOWN_PER_MINUTE / 60, UNKNOWN_BURST, clock=clock)
        self._recorded: dict[str, float] = {}  # identity -> last written (bounded below)
        self.pending = 0
        self._counted_at = -math.inf

    async def refused(self, identity: str, host: str, quiet: QuietLog) -> None:
        now = self._clock()
        last = self._recorded.get(identity)
        if last is not None:
            if now - last >= 60:
                self._recorded[identity] = now
                await self._store.charger_refused(identity, host, "unknown identity")
            return
        if self.pending >= MAX_PENDING_IDENTITIES and now - self._counted_at >= 60:
            self._counted_at = now
            self.count(await self._store.chargers())
        if self.pending >= MAX_PENDING_IDENTITIES:
            quiet.warning(
                "unknown-full",
                "not recording unknown charger identities: %d are pending already "
                "(approve or remove them: edgegw chargers pending)",
                self.pending,
            )
            return
        if self._new.try_take() > 0:
            quiet.warning(
                "unknown-rate",
                "not recording all unknown charger identities: more than %d new ones a minute "
                "(a scan or a flood)",
                UNKNOWN_PER_MINUTE,
            )
            return
        if len(self._recorded) >= MAX_PENDING_IDENTITIES * 2:
            self._recorded.clear()
        self._recorded[identity] = now
        self.pending += 1
        await self._store.charger_refused(identity, host, "unknown identity")

    def count(self, rows: list[ChargerRow]) -> None:
        self.pending = sum(1 for r in rows if r.state == "pending")
