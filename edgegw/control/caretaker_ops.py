"""Control-socket operations for the caretaker: a charger's maximum current, free charging,
and the site's load over the last day.

- ``chargers.set_max_current`` (admin; charger, max_current_a): lower a charger's maximum at
  runtime. ``null`` (or the configured maximum) removes the override; 0 pauses its sessions.
  It never raises the charger above its configured ``max_current_a``, and is refused between
  0 and its minimum. The load controller applies it at its next round, started at once. On a
  site without load capping (no ``[site]``) it is refused: nothing there would keep such a
  limit in force (re-send it after the charger reboots or the cloud clears it, apply it to
  every new session), and a limit that silently disappears is worse than none.
- ``chargers.free_charging`` (admin; charger, enabled): every card is accepted at that
  charger whenever the gateway answers itself (a standalone site, the cloud unreachable or too
  slow). While the cloud answers, its answer is relayed as it is: the gateway stays invisible
  to the cloud. The charger still asks for a card unless it is set to start on its own (its
  ``free_charging_tag``, always accepted).
- ``chargers.overrides`` (read-only): what is set, per charger.
- ``energy.history`` (read-only; minutes=1440): one point a minute of the grid current, the
  chargers' current and the rest of the building's, per phase, the highest of each minute.
  With load capping it follows the controller's rounds (per site phase; the minutes before a
  restart are read back from the decision log); without, the site meter's samples and what
  the chargers report (their own phases, not mapped to the site's wiring); with neither it
  is empty (``source`` says which).

The settings are the use cases of :class:`~edgegw.services.caretaker.CaretakerSettings`
(kept in the database, put back when the daemon starts, each change recorded as an event; the
MQTT commands set the temporary site limit through the same service); this module adapts them
to the control socket and records the site's load for ``energy.history``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.energy.allocator import PerPhase
from edgegw.energy.loadhistory import DAY_POINTS, LoadPoint, LoadRecorder, sample_decision_log
from edgegw.services.caretaker import FREE_CHARGING_NOTE, CaretakerSettings
from edgegw.services.ports import VIA_CONTROL
from edgegw.store.db import Database

if TYPE_CHECKING:
    from edgegw.energy.controller import RoundListener
    from edgegw.energy.meters import MeterPoller, MeterSample
    from edgegw.livestate import SiteLive

log = logging.getLogger(__name__)

__all__ = ["FREE_CHARGING_NOTE", "CaretakerOps"]


class Rounds(Protocol):
    """The load controller's rounds, for the load history."""

    def add_round_listener(self, listener: RoundListener) -> Callable[[], None]: ...


class CaretakerOps:
    """Registers the caretaker's ops on a :class:`ControlServer`.

    ``settings`` is the caretaker's service. The load history follows the controller's
    ``rounds`` (with load capping), else the ``site_meter`` and the chargers' current as the
    live ``site`` view reports it; ``db`` reads the decision log back. :meth:`register` starts
    the recording; :meth:`close` stops it.
    """

    def __init__(
        self,
        settings: CaretakerSettings,
        *,
        rounds: Rounds | None = None,
        site_meter: MeterPoller | None = None,
        site: Callable[[], SiteLive | None] = lambda: None,
        db: Database | None = None,
        clock: Callable[[], float] = time.time,
        history_points: int = DAY_POINTS,
    ) -> None:
        self.settings = settings
        self._rounds = rounds
        self._site_meter = site_meter
        self._site = site
        self._db = db
        self._clock = clock
        self.recorder = LoadRecorder(points=history_points)
        self._source = "none"
        self._detach: Callable[[], None] | None = None
        self._backfilled = False
        self._backfill_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start_recording(self) -> None:
        if self._detach is not None:
            return
        if self._rounds is not None:
            self._detach = self._rounds.add_round_listener(self.recorder.add_round)
            self._source = "load_capping"
            return
        poller = self._site_meter
        if poller is not None:
            listener = self._meter_sample
            poller.add_listener(listener)
            self._detach = lambda: poller.remove_listener(listener)
            self._source = "site_meter"

    def _meter_sample(self, sample: MeterSample) -> None:
        currents = sample.reading.currents_a
        grid: PerPhase | None = None
        if all(c is not None and math.isfinite(c) for c in currents):
            grid = (float(currents[0] or 0), float(currents[1] or 0), float(currents[2] or 0))
        site = self._site()
        ev: PerPhase | None = None
        if site is not None and site.ev_current_a is not None:
            measured = site.ev_current_a
            ev = (measured[0] or 0.0, measured[1] or 0.0, measured[2] or 0.0)
        elif site is not None and site.chargers_connected == 0:
            ev = (0.0, 0.0, 0.0)  # no charger connected: none can draw
        non_ev: PerPhase | None = None
        if grid is not None and ev is not None:
            non_ev = (
                max(0.0, grid[0] - ev[0]),
                max(0.0, grid[1] - ev[1]),
                max(0.0, grid[2] - ev[2]),
            )
        self.recorder.add(self._clock(), grid, ev, non_ev)

    def close(self) -> None:
        """Stop recording (the points recorded stay readable)."""
        if self._detach is not None:
            self._detach()
            self._detach = None

    async def aclose(self) -> None:
        """:meth:`close`, once the settings' last change is written."""
        self.close()
        await self.settings.aclose()

    def register(self, server: ControlServer) -> None:
        self.start_recording()
        server.register(
            "chargers.set_max_current",
            self.set_max_current,
            admin=True,
            description=(
                "Lower a charger's maximum current at runtime (args: charger, max_current_a: "
                "A, 0 pauses, null removes; never above its configured max_current_a). "
                "Needs load capping ([site])."
            ),
        )
        server.register(
            "chargers.free_charging",
            self.free_charging,
            admin=True,
            description=(
                "Switch free charging (args: charger, enabled): every card is accepted there "
                "when the gateway answers itself (standalone or cloud unreachable); while the "
                "cloud answers, its answer is relayed unchanged."
            ),
        )
        server.register(
            "chargers.overrides",
            self.overrides,
            description="The caretaker's runtime settings per charger (max current, free).",
        )
        server.register(
            "energy.history",
            self.history,
            description=(
                "Site load per minute, highest of each minute, per phase: grid, EV and "
                "non-EV current (args: minutes=1440)."
            ),
        )

    # ------------------------------------------------------------------ ops

    async def set_max_current(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = get_arg(args, "charger", str).strip()
        if "max_current_a" not in args:
            raise ControlError(
                ErrorCode.BAD_ARGS,
                "missing argument 'max_current_a' (amperes; 0 pauses, null removes the override)",
            )
        amps = get_arg(args, "max_current_a", float, None)
        done = await self.settings.set_max_current(charger_id, amps, via=VIA_CONTROL)
        return {
            "charger": charger_id,
            "status": "Accepted",
            "max_current_a": done.max_current_a,
            "configured_max_a": done.configured_max_a,
            "message": done.message + "; applied at the next load-capping round",
        }

    async def free_charging(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = get_arg(args, "charger", str).strip()
        enabled = get_arg(args, "enabled", bool)
        await self.settings.set_free_charging(charger_id, enabled, via=VIA_CONTROL)
        return {
            "charger": charger_id,
            "status": "Accepted",
            "enabled": enabled,
            "message": FREE_CHARGING_NOTE if enabled else "Cards are checked again.",
        }

    async def overrides(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "chargers": [
                {
                    "charger": row.charger_id,
                    "configured_max_a": row.configured_max_a,
                    "max_current_a": row.max_current_a,
                    "free_charging": row.free_charging,
                }
                for row in self.settings.settings()
            ],
            "max_current": self.settings.limits is not None,
            "free_charging": self.settings.cards is not None,
        }

    async def history(self, args: dict[str, Any]) -> dict[str, Any]:
        limit = self.recorder.capacity
        minutes = get_arg(args, "minutes", int, limit)
        if not 1 <= minutes <= limit:
            raise ControlError(ErrorCode.BAD_ARGS, f"minutes must be between 1 and {limit}")
        now = self._clock()
        since = now - minutes * self.recorder.step_s
        await self._backfill(now)
        points = self.recorder.points(since)
        return {
            "step_s": self.recorder.step_s,
            "source": self._source,
            "recording_since": self.recorder.started_at,
            "points": [_point(p) for p in points],
            "count": len(points),
        }

    # ------------------------------------------------------------------ helpers

    async def _backfill(self, now: float) -> None:
        """Once: the minutes before recording started, read back from the decision log."""
        if self._backfilled or self._source != "load_capping":
            return
        async with self._backfill_lock:
            db = self._db
            if self._backfilled or db is None:
                return
            self._backfilled = True
            until = self.recorder.started_at or now
            since = now - self.recorder.capacity * self.recorder.step_s
            try:
                points = await sample_decision_log(db, since, until)
            except Exception:
                log.exception("load history: the decision log could not be read back")
                return
            self.recorder.backfill(points)


def _phases(value: PerPhase | None) -> list[float] | None:
    return None if value is None else [round(v, 1) for v in value]


def _point(point: LoadPoint) -> dict[str, Any]:
    return {
        "at": point.at,
        "grid_a": _phases(point.grid_a),
        "ev_a": _phases(point.ev_a),
        "non_ev_a": _phases(point.non_ev_a),
        "source": point.source,
    }
