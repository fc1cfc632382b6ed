"""The load-capping controller: meter and sessions in, charging profiles out.

Every ``control_interval`` and on events (a session starts or stops, a connector changes
status, a charger connects, the meter jumps, the cloud clears a profile) the controller runs one
*round*: it builds the site state from the latest meter sample and what it learned from the
chargers' traffic, asks the pure allocator (:func:`edgegw.energy.allocator.allocate`) for every
session's limit, turns the limits into the charging profiles each charger model supports
(:mod:`edgegw.energy.profiles`) and hands changed ones to one sender task per charger.
A round never waits for a charger: it is synchronous and takes well under a millisecond per
charger; the senders do the I/O, cuts before raises, one call in flight per charger, retrying
with back-off a profile the charger refused or did not answer.

The parts, as ``proxy/link.py`` (sans-IO) and ``proxy/session.py`` (its shell) are split:

* :mod:`edgegw.energy.sitemodel` (records in :mod:`~edgegw.energy.siterecords`): the site
  model, fed by charger events (:mod:`edgegw.ocpp.events`) through :meth:`LoadController.handle`;
* :mod:`edgegw.energy.planner`: one round, :func:`~edgegw.energy.planner.plan_round`;
* pure arithmetic: the building load (:mod:`~edgegw.energy.nonev`), the current in force
  (:mod:`~edgegw.energy.inforce`), the cloud's profiles read and clamped
  (:mod:`~edgegw.energy.cloudcaps`);
* :mod:`edgegw.energy.controlstate`: the state snapshot, round loads and decision-log rows;
* this module: the I/O shell (the round loop, the senders and their back-off, the decision
  log, the round listeners).

What the allocator counts as in force (``Session.offered_a``) is what the charger has
*acknowledged*, so a raise is never counted on before the charger has taken the cut that
makes room for it. Only meaningful changes are sent: a cut always, a raise when it is at
least ``min_change_a``.

Safety nets, in the order they act:

* a charger gets its safe profile the moment it connects (its ``fallback_current_a``, or
  paused), before any reading, and keeps it if the gateway dies (chargers keep profiles);
* after a failed meter read (no answer, garbage, an answer to another request) the last
  valid sample may still cut, never raise: limits hold until the meter reads again;
* a meter sample older than ``meter_lost_after`` puts the round in fallback mode (the EVs
  share ``site.fallback_ev_a``, or pause); a frozen meter's sample is as old as the last
  change of its registers, so it falls back as soon as a silent one;
* a charger whose measured current stays clearly above its limit is flagged; its excess is
  counted as load the gateway does not control, so the others make room for it;
* a cloud profile can never lift the cap (:func:`~edgegw.energy.profiles.clamp_cloud_profile`),
  and a cloud ClearChargingProfile that removed the gateway's profile is answered by
  re-asserting it;
* sessions the gateway cannot limit (charger disconnected, no smart charging, a 0 A pause the
  charger would ignore) are counted as fixed load at what they may draw.

A caretaker can lower one charger's maximum at runtime (:meth:`LoadController.set_charger_max`,
0 pauses it): its sessions and its safe profile never get more, and ``state()`` shows it. Who
keeps it across restarts is the caller's business (``edgegw.control.caretaker_ops``). Round
listeners (:meth:`LoadController.add_round_listener`) are told the load each round saw, for
the per-minute history.

It works without a cloud: the cloud hooks are simply never called.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edgegw.config import Config
from edgegw.energy import cloudcaps, profiles201
from edgegw.energy.allocator import AllocationResult, AllocatorParams, Mode, PerPhase, Phase
from edgegw.energy.boardload import board_reading_matters
from edgegw.energy.chargermodels import ChargerModel, Purpose
from edgegw.energy.controlstate import (
    ChargerState,
    ControllerState,
    DecisionSink,
    RoundListener,
    RoundLoad,
    SessionState,
    decision_inputs,
    decision_outputs,
    snapshot,
)
from edgegw.energy.planner import FailAwareSample, SampleLike, ev_load, plan_round
from edgegw.energy.profiles import ProfileCommand, ProfileKey
from edgegw.energy.sitemodel import SiteModel
from edgegw.energy.siterecords import ChargerRecord, CircuitSamples, Flag, Tuning
from edgegw.ocpp.events import ChargerConnected, Event
from edgegw.ocpp.versions import OCPP16, OCPP201, is_v2
from edgegw.tasks import TaskOwner

__all__ = [
    "CallFn",
    "ChargerState",
    "ControllerState",
    "DecisionSink",
    "FailAwareSample",
    "Flag",
    "LoadController",
    "RoundListener",
    "RoundLoad",
    "SampleLike",
    "SessionState",
    "Tuning",
]

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]


class CallFn(Protocol):
    """``(charger_id, action, payload) -> answer``; raises on CALLERROR, timeout or disconnect.

    ``version`` is the OCPP version the call is written in (given only for a 2.x charger: a
    call without it is a 1.6 one); a charger speaking another version gets nothing (raises).
    """

    def __call__(
        self, charger_id: str, action: str, payload: JsonDict, /, *, version: str = ...
    ) -> Awaitable[JsonDict]: ...


@dataclass(slots=True)
class _Link:
    """A charger's sender: the task sending its pending profiles, and what wakes it."""

    wake: asyncio.Event
    sender: asyncio.Task[None] | None = None


class _Hooks:
    """The site model's hooks, carried out by the shell."""

    def __init__(self, shell: LoadController) -> None:
        self._shell = shell

    def round_wanted(self) -> None:
        self._shell._kicked.set()

    def changed(self) -> None:
        self._shell._bump()

    def send_pending(self, charger_id: str) -> None:
        self._shell._ensure_sender(charger_id)
        self._shell._link(charger_id).wake.set()

    def wake(self, charger_id: str) -> None:
        self._shell._link(charger_id).wake.set()

    def dropped(self, charger_id: str) -> None:
        link = self._shell._links.pop(charger_id, None)
        if link is not None and link.sender is not None:
            link.sender.cancel("charger removed from the configuration")


class LoadController:
    """Keeps the chargers within the site's limit: the I/O shell around the pure parts.

    The :class:`~edgegw.energy.sitemodel.SiteModel` follows the chargers through their events
    (:meth:`handle`) and the cloud calls they accepted (this is the proxy's
    ``CloudCallFilter``, ``edgegw.proxy.hooks``); :func:`~edgegw.energy.planner.plan_round`
    decides each round. The shell runs the rounds (on a timer and when the model asks for
    one), sends each charger's pending profiles from one sender task per charger with
    back-off, writes the decision log and tells the round listeners.

    ``latest_sample`` returns the newest site-meter sample (or None); the daemon also calls
    :meth:`meter_event` on each new one so that a jump is answered at once. ``clock`` is
    monotonic (the sample's ``at`` uses the same clock), ``wall_clock`` POSIX time for profile
    timestamps and the decision log. Call :meth:`start` to run rounds on a timer and on events,
    or drive :meth:`run_round` yourself; :meth:`close` ends every task. A configuration
    reload hands the new set of chargers to :meth:`use_config`.
    """

    def __init__(
        self,
        config: Config,
        models: Mapping[str, ChargerModel],
        call: CallFn,
        latest_sample: Callable[[], SampleLike | None],
        decisions: DecisionSink | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        params: AllocatorParams | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        if config.site is None:
            raise ValueError("load capping needs a [site] section in the configuration")
        self._site = config.site
        self._call = call
        self._latest = latest_sample
        self._decisions = decisions
        self._clock = clock
        self._wall = wall_clock
        self._params = params or AllocatorParams(ramp_a_per_s=config.site.ramp_a_per_s)
        self._tuning = tuning or Tuning()
        self._tasks = TaskOwner("loadcap")
        self._links: dict[str, _Link] = {}
        self._kicked = asyncio.Event()
        self._progress = asyncio.Event()
        self._closed = False
        self._round_listeners: list[RoundListener] = []
        self._versions: dict[str, str] = {}
        """Each charger's OCPP version, as it last connected."""
        self._model = SiteModel(
            config,
            models,
            clock=clock,
            wall_clock=wall_clock,
            tuning=self._tuning,
            hooks=_Hooks(self),
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run rounds every ``control_interval`` and whenever an event asks for one."""
        self._tasks.spawn(self._loop(), "rounds")
        self._kick()  # the first round at once

    def set_temporary_limit(self, limit_a: PerPhase | None, duration_s: float | None) -> None:
        """Cap the site below its configured limit for a while (a building manager's peak
        shaving, an MQTT command); ``None`` ends it. It can lower the limit, never raise it
        above the configuration (the main fuse does not change)."""
        self._model.set_temporary_limit(limit_a, duration_s)
        shown = "ended" if limit_a is None else "/".join(f"{a:g}" for a in limit_a) + " A"
        log.info("temporary site limit %s", shown)
        self._kick()

    def lower_limit(self, source: str, node: str | None, limit_a: PerPhase | None) -> None:
        """A limit from outside the configuration (``edgegw.energy.external``, peak shaving):
        ``source`` lowers the site (``node`` None) or a circuit to ``limit_a`` per phase until
        it calls again with ``None``; the lowest of all holds, never above the configuration.
        A round runs at once. Raises :class:`ValueError` for an unknown circuit."""
        self._model.lower_limit(source, node, limit_a)
        self._kick()

    def set_charger_max(self, charger_id: str, max_current_a: float | None) -> None:
        """A caretaker's maximum for one charger's sessions, at runtime; ``None`` removes it.

        It can lower the configured ``max_current_a``, never raise it (the installer sized
        the cable and the breaker for that). Between 0 and the charger's minimum nothing can
        be signalled, so that is refused; 0 pauses its sessions (refused for a model that a
        0 A profile does not pause). The next round, started at once, applies it. Raises
        :class:`ValueError` saying why a value cannot be used.
        """
        self._model.set_charger_max(charger_id, max_current_a)

    def charger_max(self, charger_id: str) -> float | None:
        """The caretaker's override of ``charger_id`` (None: the configuration decides)."""
        ch = self._model.chargers.get(charger_id)
        return None if ch is None else ch.max_override

    def add_round_listener(self, listener: RoundListener) -> Callable[[], None]:
        """Call ``listener`` after every round with the load it saw (it must return at once).
        Returns a function that removes it."""
        self._round_listeners.append(listener)

        def remove() -> None:
            if listener in self._round_listeners:
                self._round_listeners.remove(listener)

        return remove

    async def close(self) -> None:
        self._closed = True
        await self._tasks.close("load controller closing")

    async def _loop(self) -> None:
        interval = self._site.control_interval
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self._kicked.wait()
            except TimeoutError:
                pass
            self._kicked.clear()
            try:
                self.run_round()
            except Exception:  # a bug in one round must not end load capping
                log.exception("load-capping round failed; the next one runs as planned")

    def _kick(self) -> None:
        self._kicked.set()

    def _bump(self) -> None:
        """Wake whoever waits in :meth:`wait_until`."""
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once ``predicate()`` holds; re-checked on every change (no polling)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._progress.wait()

    def settled(self) -> bool:
        """No connected charger has a profile still to send."""
        return self._model.settled()

    async def wait_settled(self, timeout: float = 10.0) -> None:
        await self.wait_until(self.settled, timeout)

    # ------------------------------------------------------------------ configuration

    def use_config(self, config: Config) -> None:
        """Take a reloaded configuration's set of chargers, live.

        Only the chargers may differ (a different ``[site]`` needs a restart, as does a
        configured charger's energy setting: ``edgegw.reload`` sees to that). A new charger
        is known from now on with its own settings: when it connects it gets its safe profile
        at once, and its sessions count at what they were offered (in force) until it
        measures, so it never takes current before the others' cuts have made room. A removed
        charger's sessions stop counting: with a grid meter whatever its car still draws is
        measured as building load until it stops, so its share goes back to the others as it
        is freed. A meter that does not measure the chargers (``meter_role = "non_ev"``)
        cannot see that: its sessions stay counted at their limit in force until they end,
        or until it has taken its pause profile (:meth:`pause_removed`, before its connection
        is closed) and gone at 0 A.
        Raises :class:`ValueError` (nothing changed) when the file cannot be taken live.
        """
        self._model.use_config(config)

    async def pause_removed(self, charger_ids: Iterable[str], timeout: float = 10.0) -> None:
        """Send the removed chargers still counted (see :meth:`use_config`) their pause
        profile (0 A, or the minimum of a model that 0 A does not pause) and wait, at most
        ``timeout`` seconds, for their answers. Call it before closing their connections: once
        a charger has acknowledged its pause its sessions count at that limit, and once it
        has gone at 0 A (chargers keep their profiles) nothing of it is counted any more.
        Its StopTransaction may never come: a removed charger cannot connect again."""
        pausing = self._model.pause_removed(charger_ids)

        def answered() -> bool:
            return all(not ch.connected or not ch.pending() for ch in pausing)

        if not pausing:
            return
        try:
            await self.wait_until(answered, timeout)
        except TimeoutError:
            log.warning(
                "%s did not take the pause profile in %g s: counted at its limit in force",
                ", ".join(ch.id for ch in pausing if ch.connected and ch.pending()),
                timeout,
            )
        self._kick()

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> None:
        """A charger event (``edgegw.ocpp.events``), from the event hub."""
        if isinstance(event, ChargerConnected):  # before the model: it starts the sender
            self._versions[event.charger_id] = event.version or OCPP16
        self._model.handle(event)

    def version_of(self, charger_id: str) -> str:
        """The OCPP version the charger spoke when it last connected (1.6 until then)."""
        return self._versions.get(charger_id, OCPP16)

    # ------------------------------------------------------------------ CloudCallFilter

    def filter_cloud_call(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        ch = self._model.known(charger_id)
        if ch is None:
            return payload

        def cap_for(connector: object) -> float | None:
            return self._model.cap_limit(ch, connector)

        if is_v2(self.version_of(charger_id)):
            return cloudcaps.filter_cloud_call201(action, payload, ch.model, cap_for)
        return cloudcaps.filter_cloud_call(action, payload, ch.model, cap_for)

    def cloud_call_answered(
        self, charger_id: str, action: str, payload: JsonDict, response: JsonDict | None
    ) -> None:
        """``payload`` is the call as the cloud asked it, before :meth:`filter_cloud_call`
        clamped it: the site model keeps the cloud's own limits (the clamped copy on the
        charger sits dormant below the gateway's stack level), placed where the charger holds
        the profile (its id and stack level as relayed, which do not depend on the cap)."""
        if not cloudcaps.accepted(response):
            return
        ch = self._model.known(charger_id)
        if ch is None:
            return
        v2 = is_v2(self.version_of(charger_id))
        payload = cloudcaps.placed(action, payload, ch.model, v2=v2)
        if v2:  # the site model reads the 1.6 form
            read = profiles201.as_v16(action, payload)
            if read is None:
                return
            level = ch.model.smart_charging.gateway_stack_level
            if action == "ClearChargingProfile" and profiles201.clears_station_tx_default(
                payload, level
            ):
                self._model.forget(ch, [ProfileKey(0, Purpose.TX_DEFAULT)])
            action, payload = read
        self._model.cloud_call_accepted(ch, action, payload)
        self._kick()
        self._bump()

    # ------------------------------------------------------------------ meter

    def meter_event(self) -> None:
        """A new site-meter sample arrived: start a round at once if it matters."""
        sample = self._latest()
        if sample is None:
            return
        grid = sample.reading.site_currents_a(self._site.phases)
        if grid is None:
            self._kick()
            return
        last = self._model.meter.last_grid
        limits = self._model.limits()
        if (
            last is None
            or any(grid[p] > limits[p] - self._site.margin_a for p in Phase)
            or any(abs(grid[p] - last[p]) >= self._tuning.jump_a for p in Phase)
        ):
            self._kick()

    def use_circuit_meters(self, latest: Callable[[], CircuitSamples]) -> None:
        """Read the boards' own meters (their samples by circuit name) every round
        (:mod:`edgegw.energy.boardload`); the daemon also calls :meth:`circuit_meter_event` on
        each new sample (:func:`~edgegw.energy.boardload.board_listener`)."""
        self._model.use_circuit_meters(latest)

    def circuit_meter_event(self, circuit: str) -> None:
        """A new sample of ``circuit``'s meter: start a round at once if it matters (the
        first one, one over the board's limit - margin, a jump)."""
        sample = self._model.circuit_samples().get(circuit)
        if board_reading_matters(self._model, circuit, sample):
            self._kick()

    # ------------------------------------------------------------------ the round

    def run_round(self) -> AllocationResult:
        """Decide every session's limit now and queue the profiles that change."""
        now = self._clock()
        wall = self._wall()
        model = self._model
        plan = plan_round(
            model, self._latest(), model.limits(), now, wall=wall, params=self._params
        )
        if self._round_listeners:
            ev = ev_load(model)
            site_grid = plan.grid_a
            if site_grid is not None and self._site.meter_role != "grid":  # it measures the rest
                site_grid = (site_grid[0] + ev[0], site_grid[1] + ev[1], site_grid[2] + ev[2])
            self._tell_round(RoundLoad(wall, site_grid, ev, plan.base_non_ev_a))
        if self._decisions is not None:
            self._decisions.record(
                wall,
                plan.result.mode.value,
                decision_inputs(model, plan),
                decision_outputs(model, plan.result),
            )
        self._bump()
        return plan.result

    def _tell_round(self, load: RoundLoad) -> None:
        for listener in tuple(self._round_listeners):
            try:
                listener(load)
            except Exception:  # a recorder's bug must not end load capping
                log.exception("load-capping round listener %r failed", listener)

    # ------------------------------------------------------------------ sending

    def _link(self, charger_id: str) -> _Link:
        link = self._links.get(charger_id)
        if link is None:
            link = self._links[charger_id] = _Link(asyncio.Event())
        return link

    def _ensure_sender(self, charger_id: str) -> None:
        link = self._link(charger_id)
        ch = self._model.chargers.get(charger_id)
        if ch is None or self._closed:
            return
        if link.sender is None or link.sender.done():
            link.sender = self._tasks.spawn(self._sender(ch, link), f"profiles/{charger_id}")

    async def _sender(self, ch: ChargerRecord, link: _Link) -> None:
        """Send the charger's pending profiles, cuts first, one call at a time."""
        model = self._model
        while True:
            await link.wake.wait()
            link.wake.clear()
            while ch.connected:
                pending = ch.pending()
                if not pending:
                    break
                cmd = min(pending, key=lambda c: (not model.is_cut(ch, c), c.key.connector_id))
                ok = await self._send(ch, cmd)
                self._bump()
                if not ok:
                    await self._back_off(ch, link)

    async def _send(self, ch: ChargerRecord, cmd: ProfileCommand) -> bool:
        try:
            async with asyncio.timeout(self._tuning.call_timeout_s):
                if is_v2(self.version_of(ch.id)):
                    payload = self._render201(ch, cmd)
                    answer = await self._call(ch.id, "SetChargingProfile", payload, version=OCPP201)
                else:
                    answer = await self._call(ch.id, "SetChargingProfile", cmd.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if ch.connected:  # a charger that just went away is not failing its profiles
                why = f"{type(exc).__name__}: {exc}"
                self._model.profile_failed(ch, cmd, Flag.PROFILE_FAILED, why)
            return False
        status = answer.get("status") if isinstance(answer, Mapping) else None
        if status != "Accepted":
            self._model.profile_failed(ch, cmd, Flag.PROFILE_REJECTED, f"answered {status!r}")
            return False
        self._model.profile_acked(ch, cmd)
        return True

    def _render201(self, ch: ChargerRecord, cmd: ProfileCommand) -> JsonDict:
        """``cmd`` in OCPP 2.0.1 form (its connector is the EVSE id; a TxProfile carries the
        charger's id of the session on that EVSE). Raises
        :class:`~edgegw.energy.profiles.ProfileError`."""
        session = ch.sessions.get(cmd.key.connector_id)
        tx = None if session is None else session.transaction_id
        return profiles201.set_charging_profile(cmd, transaction_id=tx, now=self._wall())

    async def _back_off(self, ch: ChargerRecord, link: _Link) -> None:
        delays = self._tuning.retry_delays_s
        delay = delays[min(ch.failures, len(delays)) - 1] if delays else 0.0
        try:
            async with asyncio.timeout(delay):
                await link.wake.wait()  # a newer decision, or a (re)connect, ends the wait
        except TimeoutError:
            pass
        link.wake.clear()

    # ------------------------------------------------------------------ reporting

    def state(self) -> ControllerState:
        """A snapshot for the control socket, the TUI and MQTT."""
        return snapshot(self._model, self._model.limits())

    @property
    def mode(self) -> Mode | None:
        result = self._model.last_result
        return None if result is None else result.mode
