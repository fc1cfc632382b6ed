"""The caretaker's settings: a charger's maximum current, free charging, the temporary site
limit. Each is applied, kept in the database (:mod:`edgegw.store.overrides`), put back by
:meth:`CaretakerSettings.restore` when the daemon starts, and recorded as an event, whichever
transport asked (the control socket, MQTT).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from edgegw.energy.allocator import PerPhase
from edgegw.services.errors import BadRequest, Conflict, Failed
from edgegw.services.ports import VIA_MQTT, ChargerDirectory, record_event, require_configured
from edgegw.store.events import EventRecorder
from edgegw.store.overrides import ChargerOverrides, TemporaryLimit
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

FREE_CHARGING_NOTE: Final = (
    "Every card is accepted at this charger whenever the gateway answers itself (no cloud, "
    "or the cloud unreachable). While the cloud answers, the cloud decides: its answer is "
    "passed on unchanged. The charger still asks for a card unless it is set to start without "
    "one."
)
NO_LOAD_CAPPING: Final = (
    "load capping is not configured (no [site] section): a maximum current set here would not "
    "be kept in force; the installer sets max_current_a instead"
)


class LoadLimits(Protocol):
    """What the load controller takes from a caretaker."""

    def charger_max(self, charger_id: str) -> float | None: ...

    def set_charger_max(self, charger_id: str, max_current_a: float | None) -> None: ...

    def set_temporary_limit(self, limit_a: PerPhase | None, duration_s: float | None) -> None: ...


class FreeCharging(Protocol):
    """The card authority's free-charging switch (``SiteCards``)."""

    def free_charging(self, charger_id: str) -> bool: ...

    def set_free_charging(self, charger_id: str, enabled: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class MaxCurrentSet:
    charger_id: str
    max_current_a: float | None
    configured_max_a: float
    message: str


@dataclass(frozen=True, slots=True)
class ChargerSettingsRow:
    charger_id: str
    configured_max_a: float
    max_current_a: float | None
    free_charging: bool


class CaretakerSettings:
    """The caretaker's settings over narrow parts: the site's ``chargers``, the load
    controller's ``limits`` (None: no load capping), the ``cards`` authority's free charging
    (None: not available), the ``overrides`` table and where to ``record`` events."""

    def __init__(
        self,
        chargers: ChargerDirectory,
        overrides: ChargerOverrides,
        record: EventRecorder | None,
        *,
        limits: LoadLimits | None,
        cards: FreeCharging | None,
        clock: Callable[[], float],
    ) -> None:
        self._chargers = chargers
        self._overrides = overrides
        self._record = record
        self.limits = limits
        self.cards = cards
        self._clock = clock
        self._tasks = TaskOwner("caretaker")
        self.site_limits = SiteLimits(limits, overrides, self._tasks, self._event, clock=clock)
        """Temporary site limits that outlast a restart (the MQTT commands set them)."""

    async def restore(self) -> None:
        """Put back the settings kept in the database (before chargers connect)."""
        await self.site_limits.restore()
        saved = await self._overrides.load()
        for charger_id, override in sorted(saved.items()):
            if self._chargers.configured(charger_id) is None:
                log.info("%s is not configured any more: its caretaker settings wait", charger_id)
                continue
            if override.max_current_a is not None:
                self._restore_max(charger_id, override.max_current_a)
            if override.free_charging:
                if self.cards is None:
                    log.warning("%s: free charging cannot be put back here", charger_id)
                else:
                    self.cards.set_free_charging(charger_id, True)

    def _restore_max(self, charger_id: str, amps: float) -> None:
        why = "load capping is not configured"
        if self.limits is not None:
            try:
                self.limits.set_charger_max(charger_id, amps)
                return
            except ValueError as exc:
                why = str(exc)
        log.warning("%s: the caretaker's maximum of %g A is not applied: %s", charger_id, amps, why)

    async def aclose(self) -> None:
        """Once the temporary limit's last change is written."""
        with contextlib.suppress(Exception):
            await self.site_limits.written()
        await self._tasks.close("caretaker closing")

    async def set_max_current(
        self, charger_id: str, amps: float | None, *, via: str
    ) -> MaxCurrentSet:
        """Lower a charger's maximum (``None`` or the configured maximum removes the
        override; 0 pauses); never above the configured maximum."""
        configured = require_configured(self._chargers, charger_id)
        limits = self.limits
        if limits is None:
            raise Conflict(NO_LOAD_CAPPING)
        if amps is not None and abs(amps - configured.max_current_a) < 1e-9:
            amps = None  # back to the configuration: no override needed
        previous = limits.charger_max(charger_id)
        try:
            limits.set_charger_max(charger_id, amps)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        try:
            await self._save(charger_id, self._overrides.set_max_current(charger_id, amps), "max")
        except Failed:
            limits.set_charger_max(charger_id, previous)  # not kept: not applied either
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
            via=via,
        )
        return MaxCurrentSet(charger_id, amps, configured.max_current_a, message)

    async def set_free_charging(self, charger_id: str, enabled: bool, *, via: str) -> None:
        require_configured(self._chargers, charger_id)
        cards = self.cards
        if cards is None:
            raise Conflict("free charging cannot be switched in this daemon")
        was = cards.free_charging(charger_id)
        await self._save(charger_id, self._overrides.set_free_charging(charger_id, enabled), "free")
        cards.set_free_charging(charger_id, enabled)
        if enabled != was:
            await self._event(
                "charger.free_charging",
                charger_id,
                "free charging on: every card is accepted when the gateway decides"
                if enabled
                else "free charging off: cards are checked again",
                {"enabled": enabled},
                via=via,
            )

    def settings(self) -> list[ChargerSettingsRow]:
        """What is set, per configured charger."""
        rows = []
        for charger_id in self._chargers.configured_ids():
            configured = self._chargers.configured(charger_id)
            assert configured is not None
            rows.append(
                ChargerSettingsRow(
                    charger_id,
                    configured.max_current_a,
                    None if self.limits is None else self.limits.charger_max(charger_id),
                    self.cards is not None and self.cards.free_charging(charger_id),
                )
            )
        return rows

    async def _save(self, charger_id: str, write: Awaitable[None], what: str) -> None:
        label = "maximum current" if what == "max" else "free charging"
        try:
            await write
        except Exception:
            log.exception("%s: could not keep the %s setting", charger_id, label)
            raise Failed(
                f"the {label} of {charger_id} could not be saved (see the daemon's log)"
            ) from None

    async def _event(
        self,
        kind: str,
        charger_id: str | None,
        message: str,
        data: dict[str, Any],
        *,
        via: str,
    ) -> None:
        log.info("%s: %s (asked over %s)", charger_id or "site", message, via)
        data = {**data, "via": via}
        await record_event(self._record, kind, message, charger_id=charger_id, data=data)


class SiteLimits:
    """The load controller's temporary site limit, kept in the database until it ends.

    The controller takes the limit at once; the write (one small row, per command, never per
    round) follows in a task owned by the caretaker settings, and the change is recorded.
    """

    def __init__(
        self,
        limits: LoadLimits | None,
        overrides: ChargerOverrides,
        tasks: TaskOwner,
        record: Callable[..., Awaitable[None]],
        *,
        clock: Callable[[], float],
    ) -> None:
        self._limits = limits
        self._overrides = overrides
        self._tasks = tasks
        self._record = record
        self._clock = clock
        self._writing: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """Whether the site has load capping to take a temporary limit."""
        return self._limits is not None

    async def restore(self) -> None:
        kept = await self._overrides.temporary_limit()
        if kept is None:
            return
        left = None if kept.ends_at is None else kept.ends_at - self._clock()
        if self._limits is None or (left is not None and left <= 0):
            await self._overrides.set_temporary_limit(None)  # ended while the daemon was stopped
            return
        self._limits.set_temporary_limit(kept.limit_a, left)
        log.info(
            "temporary site limit of %s A put back%s",
            "/".join(f"{a:g}" for a in kept.limit_a),
            "" if left is None else f" for the {left:.0f} s left",
        )

    async def written(self) -> None:
        """Wait until the last change is in the database (and the journal)."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    def set_temporary_limit(
        self, limit_a: PerPhase | None, duration_s: float | None, *, via: str = VIA_MQTT
    ) -> None:
        """Cap the site below its configured limit for ``duration_s`` (None: until ended);
        ``limit_a`` None ends it."""
        if self._limits is None:
            raise Conflict("load capping is off on this site (no [site] section)")
        self._limits.set_temporary_limit(limit_a, duration_s)
        kept = None
        if limit_a is not None:
            ends = None if duration_s is None else self._clock() + max(0.0, duration_s)
            kept = TemporaryLimit((limit_a[0], limit_a[1], limit_a[2]), ends)
        self._writing = self._tasks.spawn(self._keep(kept, duration_s, self._writing, via), "limit")

    async def _keep(
        self,
        kept: TemporaryLimit | None,
        duration_s: float | None,
        before: asyncio.Task[None] | None,
        via: str,
    ) -> None:
        if before is not None:  # in the order they were given
            with contextlib.suppress(Exception):
                await before
        try:
            await self._overrides.set_temporary_limit(kept)
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
        await self._record("site.temporary_limit", None, message, data, via=via)
