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

Both settings are kept in the database (:mod:`edgegw.store.overrides`) and put back by
:meth:`CaretakerOps.restore` when the daemon starts, and each change is recorded as an event.
So is a temporary site limit (an MQTT command): :attr:`CaretakerOps.site_limits` is what the
MQTT commands set it through; it is kept until its end time, and a restart before then puts
it back for the time that is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from edgegw.auth.authority import SiteCards
from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.energy.allocator import PerPhase
from edgegw.energy.loadhistory import DAY_POINTS, LoadPoint, LoadRecorder, sample_decision_log
from edgegw.store.journal import event_recorder
from edgegw.store.overrides import ChargerOverrides, TemporaryLimit
from edgegw.tasks import TaskOwner

if TYPE_CHECKING:
    from edgegw.daemon import Gateway
    from edgegw.energy.controller import LoadController
    from edgegw.energy.meters import MeterPoller, MeterSample

log = logging.getLogger(__name__)

FREE_CHARGING_NOTE: Final = (
    "Every card is accepted at this charger whenever the gateway answers itself (no cloud, "
    "or the cloud unreachable). While the cloud answers, the cloud decides: its answer is "
    "passed on unchanged. The charger still asks for a card unless it is set to start without "
    "one."
)


class CaretakerOps:
    """Registers the caretaker's ops on a :class:`ControlServer`.

    ``cards`` is the card authority the gateway answers with (None: free charging is not
    available). Call :meth:`restore` once the load controller exists and before chargers
    connect, then :meth:`register`; :meth:`close` stops the recording.
    """

    def __init__(
        self,
        gateway: Gateway,
        cards: SiteCards | None = None,
        *,
        clock: Callable[[], float] = time.time,
        history_points: int = DAY_POINTS,
    ) -> None:
        self._gw = gateway
        self._cards = cards
        self._clock = clock
        self.recorder = LoadRecorder(points=history_points)
        self._source = "none"
        self._detach: Callable[[], None] | None = None
        self._backfilled = False
        self._backfill_lock = asyncio.Lock()
        self._tasks = TaskOwner("caretaker")
        self.site_limits = SiteLimits(gateway, self._tasks, self._event, clock=clock)
        """Temporary site limits that outlast a restart (give it to the MQTT commands)."""

    # ------------------------------------------------------------------ lifecycle

    async def restore(self) -> None:
        """Put back the settings kept in the database, and start recording the site's load."""
        self._record()
        store = self._gw.store
        if store is None:
            return
        overrides = ChargerOverrides(store.db)
        await self._restore_temporary_limit(overrides)
        saved = await overrides.load()
        for charger_id, override in sorted(saved.items()):
            if self._gw.config.charger(charger_id) is None:
                log.info("%s is not configured any more: its caretaker settings wait", charger_id)
                continue
            if override.max_current_a is not None:
                self._restore_max(charger_id, override.max_current_a)
            if override.free_charging:
                if self._cards is None:
                    log.warning("%s: free charging cannot be put back here", charger_id)
                else:
                    self._cards.set_free_charging(charger_id, True)

    async def _restore_temporary_limit(self, overrides: ChargerOverrides) -> None:
        kept = await overrides.temporary_limit()
        if kept is None:
            return
        controller = self._gw.controller
        left = None if kept.ends_at is None else kept.ends_at - self._clock()
        if controller is None or (left is not None and left <= 0):
            await overrides.set_temporary_limit(None)  # ended while the daemon was stopped
            return
        controller.set_temporary_limit(kept.limit_a, left)
        log.info(
            "temporary site limit of %s A put back%s",
            "/".join(f"{a:g}" for a in kept.limit_a),
            "" if left is None else f" for the {left:.0f} s left",
        )

    def _restore_max(self, charger_id: str, amps: float) -> None:
        controller = self._gw.controller
        if controller is None:
            log.warning(
                "%s: the caretaker's maximum of %g A is not applied: load capping is not "
                "configured",
                charger_id,
                amps,
            )
            return
        try:
            controller.set_charger_max(charger_id, amps)
        except ValueError as exc:
            log.warning(
                "%s: the caretaker's maximum of %g A is not applied: %s", charger_id, amps, exc
            )

    def _record(self) -> None:
        if self._detach is not None:
            return
        controller = self._gw.controller
        if controller is not None:
            self._detach = controller.add_round_listener(self.recorder.add_round)
            self._source = "load_capping"
            return
        meters = self._gw.meters
        poller = meters.site_meter if meters is not None else None
        if poller is not None:
            self._detach = _follow_meter(poller, self._meter_sample)
            self._source = "site_meter"

    def _meter_sample(self, sample: MeterSample) -> None:
        currents = sample.reading.currents_a
        grid: PerPhase | None = None
        if all(c is not None and math.isfinite(c) for c in currents):
            grid = (float(currents[0] or 0), float(currents[1] or 0), float(currents[2] or 0))
        live = self._gw.live
        site = live.site() if live is not None else None
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
        """:meth:`close`, once the temporary limit's last change is written."""
        self.close()
        with contextlib.suppress(Exception):
            await self.site_limits.written()
        await self._tasks.close("caretaker closing")

    def register(self, server: ControlServer) -> None:
        self._record()
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
        charger_id = self._configured(args)
        if "max_current_a" not in args:
            raise ControlError(
                ErrorCode.BAD_ARGS,
                "missing argument 'max_current_a' (amperes; 0 pauses, null removes the override)",
            )
        amps = get_arg(args, "max_current_a", float, None)
        controller = self._controller()
        configured = self._gw.config.charger(charger_id)
        assert configured is not None
        if amps is not None and abs(amps - configured.max_current_a) < 1e-9:
            amps = None  # back to the configuration: no override needed
        previous = controller.charger_max(charger_id)
        try:
            controller.set_charger_max(charger_id, amps)
        except ValueError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None
        try:
            await self._save(
                charger_id,
                lambda overrides: overrides.set_max_current(charger_id, amps),
                what="maximum current",
            )
        except ControlError:
            controller.set_charger_max(charger_id, previous)  # not kept: not applied either
            raise
        if amps is None:
            message = f"maximum current back to the configured {configured.max_current_a:g} A"
        elif amps == 0:
            message = "paused by the caretaker (maximum current 0 A)"
        else:
            message = f"maximum current lowered to {amps:g} A"
        await self._event(
            "charger.max_current",
            charger_id,
            message,
            {"max_current_a": amps, "previous_a": previous},
        )
        return {
            "charger": charger_id,
            "status": "Accepted",
            "max_current_a": amps,
            "configured_max_a": configured.max_current_a,
            "message": message + "; applied at the next load-capping round",
        }

    async def free_charging(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = self._configured(args)
        enabled = get_arg(args, "enabled", bool)
        cards = self._cards
        if cards is None:
            raise ControlError(
                ErrorCode.UNAVAILABLE, "free charging cannot be switched in this daemon"
            )
        was = cards.free_charging(charger_id)
        await self._save(
            charger_id,
            lambda overrides: overrides.set_free_charging(charger_id, enabled),
            what="free charging",
        )
        cards.set_free_charging(charger_id, enabled)
        if enabled != was:
            await self._event(
                "charger.free_charging",
                charger_id,
                "free charging on: every card is accepted when the gateway decides"
                if enabled
                else "free charging off: cards are checked again",
                {"enabled": enabled},
            )
        return {
            "charger": charger_id,
            "status": "Accepted",
            "enabled": enabled,
            "message": FREE_CHARGING_NOTE if enabled else "Cards are checked again.",
        }

    async def overrides(self, args: dict[str, Any]) -> dict[str, Any]:
        controller = self._gw.controller
        rows = []
        for charger in self._gw.config.chargers:
            rows.append(
                {
                    "charger": charger.id,
                    "configured_max_a": charger.max_current_a,
                    "max_current_a": None
                    if controller is None
                    else controller.charger_max(charger.id),
                    "free_charging": self._cards is not None
                    and self._cards.free_charging(charger.id),
                }
            )
        return {
            "chargers": rows,
            "max_current": controller is not None,
            "free_charging": self._cards is not None,
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

    def _configured(self, args: dict[str, Any]) -> str:
        charger_id = get_arg(args, "charger", str).strip()
        if self._gw.config.charger(charger_id) is None:
            known = ", ".join(c.id for c in self._gw.config.chargers) or "none"
            raise ControlError(
                ErrorCode.NOT_FOUND,
                f"no charger {charger_id!r} is configured (configured: {known})",
            )
        return charger_id

    def _controller(self) -> LoadController:
        controller = self._gw.controller
        if controller is None:
            raise ControlError(
                ErrorCode.CONFLICT,
                "load capping is not configured (no [site] section): a maximum current set "
                "here would not be kept in force; the installer sets max_current_a instead",
            )
        return controller

    async def _save(
        self,
        charger_id: str,
        write: Callable[[ChargerOverrides], Any],
        *,
        what: str,
    ) -> None:
        store = self._gw.store
        if store is None:
            raise ControlError(ErrorCode.UNAVAILABLE, "the daemon is starting; try again")
        try:
            await write(ChargerOverrides(store.db))
        except Exception:
            log.exception("%s: could not keep the %s setting", charger_id, what)
            raise ControlError(
                ErrorCode.INTERNAL,
                f"the {what} of {charger_id} could not be saved (see the daemon's log)",
            ) from None

    async def _event(
        self, kind: str, charger_id: str | None, message: str, data: dict[str, Any]
    ) -> None:
        log.info("%s: %s (asked on the control socket)", charger_id or "site", message)
        record = event_recorder(self._gw)
        if record is None:
            return
        try:
            await record(kind, message, charger_id=charger_id, data=data)
        except Exception:  # the change is made; a full disk must not hide the answer
            log.exception("%s: could not record %s", charger_id or "site", kind)

    async def _backfill(self, now: float) -> None:
        """Once: the minutes before recording started, read back from the decision log."""
        if self._backfilled or self._source != "load_capping":
            return
        async with self._backfill_lock:
            store = self._gw.store
            if self._backfilled or store is None:
                return
            self._backfilled = True
            until = self.recorder.started_at or now
            since = now - self.recorder.capacity * self.recorder.step_s
            try:
                points = await sample_decision_log(store.db, since, until)
            except Exception:
                log.exception("load history: the decision log could not be read back")
                return
            self.recorder.backfill(points)


class SiteLimits:
    """The load controller's temporary site limit, kept in the database until it ends.

    An :class:`~edgegw.telemetry.commands.TemporaryLimits`: the controller takes the limit at
    once; the write (one small row, per command, never per round) follows in a task owned by
    the caretaker ops, and the change is recorded in the journal.
    """

    def __init__(
        self,
        gateway: Gateway,
        tasks: TaskOwner,
        record: Callable[[str, str | None, str, dict[str, Any]], Awaitable[None]],
        *,
        clock: Callable[[], float],
    ) -> None:
        self._gw = gateway
        self._tasks = tasks
        self._record = record
        self._clock = clock
        self._writing: asyncio.Task[None] | None = None

    async def written(self) -> None:
        """Wait until the last change is in the database (and the journal)."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    def set_temporary_limit(self, limit_a: PerPhase | None, duration_s: float | None) -> None:
        controller = self._gw.controller
        if controller is None:
            raise ValueError("load capping is not configured")
        controller.set_temporary_limit(limit_a, duration_s)
        kept = None
        if limit_a is not None:
            ends = None if duration_s is None else self._clock() + max(0.0, duration_s)
            kept = TemporaryLimit((limit_a[0], limit_a[1], limit_a[2]), ends)
        self._writing = self._tasks.spawn(self._keep(kept, duration_s, self._writing), "limit")

    async def _keep(
        self,
        kept: TemporaryLimit | None,
        duration_s: float | None,
        before: asyncio.Task[None] | None,
    ) -> None:
        if before is not None:  # in the order they were given
            with contextlib.suppress(Exception):
                await before
        store = self._gw.store
        if store is not None:
            try:
                await ChargerOverrides(store.db).set_temporary_limit(kept)
            except Exception:  # in force anyway; only a restart would lift it early
                log.exception("the temporary site limit could not be kept in the database")
        data: dict[str, Any] = {"limit_a": None, "ends_at": None}
        if kept is None:
            message = "temporary site limit ended"
        else:
            amps = "/".join(f"{a:g}" for a in kept.limit_a)
            until = "" if duration_s is None else f" for {duration_s:g} s"
            message = f"temporary site limit {amps} A{until}"
            data = {"limit_a": list(kept.limit_a), "ends_at": kept.ends_at}
        await self._record("site.temporary_limit", None, message, data)


def _follow_meter(
    poller: MeterPoller, listener: Callable[[MeterSample], None]
) -> Callable[[], None]:
    poller.add_listener(listener)
    return lambda: poller.remove_listener(listener)


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
