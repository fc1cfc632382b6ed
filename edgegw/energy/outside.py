"""The limits from outside in a running daemon: ``[[limits]]`` signals and ``[peak]`` shaving,
built on the load controller (``lower_limit``), the store and the meters' buses.

:meth:`OutsideLimits.start` puts back the activations still open in the log (they hold from
before the first read: :mod:`edgegw.energy.external`) and the month's quarter-hours, then
starts the readers; call it before the OCPP server accepts chargers. The control op
``energy.limits`` reports both (the CLI's ``energy peak`` and ``energy limits``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from edgegw.config import Config
from edgegw.energy.external import ExternalLimits, LimitSink
from edgegw.energy.external_sources import ExternalLimitService
from edgegw.energy.meterservice import MeterService
from edgegw.energy.peakservice import PeakService
from edgegw.store.db import Database
from edgegw.store.limitlog import LimitLog
from edgegw.tasks import TaskOwner

log = logging.getLogger("edgegw.energy.limits")

PRUNE_EVERY_S = 86_400.0


class _Registry(Protocol):
    def register(
        self, op: str, handler: Any, *, admin: bool = False, description: str = ""
    ) -> None: ...


class OutsideLimits:
    """The external limits and peak shaving of one daemon."""

    def __init__(
        self,
        config: Config,
        sink: LimitSink,
        db: Database | None,
        meters: MeterService | None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._wall = wall_clock
        self.store = None if db is None else LimitLog(db)
        self.external = ExternalLimits(config, sink, self.store, clock=wall_clock)
        self.service = ExternalLimitService(
            config, self.external, meters.buses if meters is not None else {}
        )
        self.peak = (
            None
            if config.peak is None
            else PeakService(config, sink, self.store, wall_clock=wall_clock)
        )
        self._meters = meters
        self._tasks = TaskOwner("outside-limits")

    @classmethod
    async def start(
        cls,
        config: Config,
        sink: LimitSink,
        db: Database | None,
        meters: MeterService | None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> OutsideLimits | None:
        """Built and started, or None when the configuration has neither limits nor [peak]."""
        if not config.limits and config.peak is None:
            return None
        self = cls(config, sink, db, meters, wall_clock=wall_clock)
        await self.external.restore()
        if self.peak is not None:
            await self.peak.start()
            site_meter = meters.site_meter if meters is not None else None
            if site_meter is None:
                log.warning("peak shaving needs the site meter: nothing to follow")
            else:
                peak = self.peak
                site_meter.add_listener(lambda sample: peak.sample(sample.reading))
        self.service.start()
        if self.store is not None:
            self._tasks.spawn(self._prune(self.store), "prune")
        return self

    async def _prune(self, store: LimitLog) -> None:
        while True:
            try:
                dropped = await store.prune(self._wall())
                if dropped:
                    log.info("external limits: %d record(s) older than two years pruned", dropped)
            except Exception:
                log.exception("external limits: pruning the old records failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    async def use_config(self, config: Config) -> None:
        """A reloaded configuration (its [[limits]] and [peak] are the running ones: a change
        there needs a restart); §14a grants follow the chargers under their circuits."""
        await self.external.use_config(config)

    def register(self, server: _Registry) -> None:
        server.register(
            "energy.limits",
            self.report,
            description="Limits from outside: each [[limits]] signal, and peak shaving.",
        )

    async def report(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "limits": self.external.snapshot(),
            "peak": None if self.peak is None else self.peak.status(),
        }

    async def close(self) -> None:
        await self._tasks.close("outside limits closing")
        await self.service.close()
        if self.peak is not None:
            await self.peak.close()
