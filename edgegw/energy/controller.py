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
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from edgegw.config import ChargerConfig, Config
from edgegw.energy.allocator import (
    AllocationResult,
    AllocatorParams,
    Mode,
    PerPhase,
    Phase,
    Priority,
    Reason,
    Session,
    Site,
    SiteState,
    allocate,
)
from edgegw.energy.chargermodels import ChargerModel, Purpose, model_for
from edgegw.energy.profiles import (
    NOMINAL_VOLTAGE,
    ConnectorLimit,
    GatewayCap,
    ProfileCommand,
    ProfileKey,
    clamp_cloud_profile,
    cleared_gateway_keys,
    iec_limit,
    plan_profiles,
    profile_limit_a,
    remap_cloud_clear,
    replaced_gateway_keys,
)
from edgegw.energy.registers import Reading
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
CallFn = Callable[[str, str, JsonDict], Awaitable[JsonDict]]
"""``(charger_id, action, payload) -> answer``; raises on CALLERROR, timeout or disconnect."""

_SESSION_STATUSES = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
_IDLE_STATUSES = frozenset({"Available", "Unavailable", "Finishing"})
_EPS = 1e-9


class SampleLike(Protocol):
    """A meter sample: the reading and when it was taken (monotonic seconds)."""

    @property
    def reading(self) -> Reading: ...

    @property
    def at(self) -> float: ...


@runtime_checkable
class FailAwareSample(SampleLike, Protocol):
    """A sample that also says whether a later read of the meter failed
    (``edgegw.energy.meters.MeterSample``)."""

    @property
    def failed_at(self) -> float | None: ...


class DecisionSink(Protocol):
    """Where each round's inputs and outputs go (``edgegw.store.decisions.DecisionLog``)."""

    def record(
        self, at: float, mode: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None: ...


class Flag(StrEnum):
    """Problems shown to the caretaker, per charger."""

    IGNORES_LIMIT = "ignores_limit"
    """Draws clearly above the limit it acknowledged."""
    PROFILE_REJECTED = "profile_rejected"
    """Answered a SetChargingProfile with Rejected/NotSupported; retried."""
    PROFILE_FAILED = "profile_failed"
    """Did not answer a SetChargingProfile (timeout, CALLERROR, disconnect); retried."""
    CANNOT_PAUSE = "cannot_pause"
    """Would have to pause but its model says 0 A does not pause it: held at its minimum."""
    NOT_CONTROLLABLE = "not_controllable"
    """Its model has no usable smart charging: its sessions count at their maximum."""
    NO_SAFE_PROFILE = "no_safe_profile"
    """Takes TxProfiles only: nothing caps a session before the gateway's first profile."""


_MODEL_FLAGS = frozenset({Flag.NOT_CONTROLLABLE, Flag.NO_SAFE_PROFILE})
"""Flags that follow from the charger's model alone."""


@dataclass(frozen=True, slots=True)
class Tuning:
    """Timings and thresholds of the controller (defaults suit real chargers)."""

    ignore_tolerance_a: float = 2.0
    """Measured above limit + this counts as ignoring the limit."""
    ignore_grace_s: float = 10.0
    """A car may take this long to follow a new limit."""
    ignore_after_s: float = 10.0
    """Over its limit this long (after the grace) and the charger is flagged."""
    retry_delays_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    """Wait before retrying a refused or failed profile; the last one repeats."""
    call_timeout_s: float = 30.0
    jump_a: float = 1.0
    """A meter sample that moved a phase this much starts a round at once."""
    draw_threshold_a: float = 1.0
    """A car draws on a phase when it measures above this."""
    follow_tolerance_a: float = 1.0
    """A car measuring within this of its limit follows its limit (counts at its limit)."""


# --------------------------------------------------------------------------------------------
# State shown to the control socket, TUI and MQTT


@dataclass(frozen=True, slots=True)
class SessionState:
    connector: int
    transaction_id: int | None
    status: str
    limit_a: float | None
    """Decided by the last round (None: not yet)."""
    offered_a: float
    """In force at the charger (acknowledged)."""
    measured_a: PerPhase | None
    """Per site phase, from the charger's MeterValues."""
    phases: tuple[str, ...]
    reason: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChargerState:
    id: str
    connected: bool
    model: str
    cap_purpose: str | None
    flags: tuple[str, ...]
    last_error: str | None
    pending_profiles: int
    sessions: tuple[SessionState, ...]
    max_current_a: float
    """The most a session may take here: the configured ``max_current_a``, or the caretaker's
    lower override (0: paused)."""
    max_override_a: float | None
    """The caretaker's runtime override (None: none, the configuration decides)."""


@dataclass(frozen=True, slots=True)
class ControllerState:
    mode: str
    """'normal', 'fallback', 'overload', or 'idle' before the first round."""
    meter: str
    """'ok', 'lost' or 'waiting' (no sample yet)."""
    meter_age_s: float | None
    limit_a: PerPhase
    margin_a: float
    grid_a: PerPhase | None
    non_ev_a: PerPhase | None
    budget_a: PerPhase | None
    used_a: PerPhase | None
    headroom_a: PerPhase | None
    chargers: tuple[ChargerState, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RoundLoad:
    """The site's load as one round saw it, for history recorders (per site phase, A)."""

    at: float
    """POSIX seconds."""
    grid_a: PerPhase | None
    """The site's grid connection (None: no valid, fresh reading). With a meter that measures
    the load without the chargers (``meter_role = "non_ev"``), that plus the chargers."""
    ev_a: PerPhase
    """What the chargers last measured for their sessions, added up."""
    non_ev_a: PerPhase | None
    """The load that is not the chargers' (measured, or estimated from a grid meter)."""


RoundListener = Callable[[RoundLoad], None]


# --------------------------------------------------------------------------------------------
# Internal bookkeeping


@dataclass(slots=True)
class _Session:
    connector: int
    arrived_at: float
    started_wall: float
    transaction_id: int | None = None
    status: str = "Charging"
    measured_a: PerPhase | None = None
    measured_at: float | None = None
    car_phases: frozenset[Phase] | None = None
    started_at: float | None = None
    paused_at: float | None = None
    last_offered: float | None = None
    offered_since: float = 0.0
    cut_at: float = 0.0
    limit_a: float | None = None
    reason: str = "new"
    over_since: float | None = None
    ignoring: bool = False
    cloud_tx: bool = False
    forced: bool = False
    pause_decided_at: float | None = None
    """When a round paused it while it ran (its pause counts from the decision, not the ack)."""


@dataclass(slots=True)
class _CloudProfile:
    connector: int
    profile: JsonDict
    received_wall: float


@dataclass(slots=True)
class _Charger:
    id: str
    config: ChargerConfig
    model: ChargerModel
    wiring: tuple[Phase, ...]
    wake: asyncio.Event
    connected: bool = False
    connectors: set[int] = field(default_factory=set)
    sessions: dict[int, _Session] = field(default_factory=dict)
    desired: dict[ProfileKey, ProfileCommand] = field(default_factory=dict)
    acked: dict[ProfileKey, ProfileCommand] = field(default_factory=dict)
    stale: set[ProfileKey] = field(default_factory=set)
    failures: int = 0
    last_error: str | None = None
    flags: set[Flag] = field(default_factory=set)
    cloud: dict[int, _CloudProfile] = field(default_factory=dict)
    """Cloud profiles the charger accepted, by chargingProfileId."""
    sender: asyncio.Task[None] | None = None
    max_override: float | None = None
    """A caretaker's lower maximum (A per phase; 0 pauses), set at runtime."""
    retired: bool = False
    """Removed from the configuration while charging: its sessions count at their limit in
    force until they end, then it is forgotten."""

    @property
    def min_a(self) -> float:
        return max(self.config.min_current_a, self.model.min_current_a)

    @property
    def max_a(self) -> float:
        """The most one of its sessions may take: the configuration, lowered by an override."""
        configured = max(self.min_a, self.config.max_current_a)
        if self.max_override is None:
            return configured
        return min(configured, self.max_override)

    @property
    def site_phases(self) -> frozenset[Phase]:
        return frozenset(self.wiring)

    def pending(self) -> list[ProfileCommand]:
        out = []
        for key, cmd in self.desired.items():
            done = self.acked.get(key)
            if key in self.stale or done is None or done.fingerprint != cmd.fingerprint:
                out.append(cmd)
        return out


_Eligible = tuple[_Charger, _Session, Session]
"""A session the allocator decides, with its charger and its bookkeeping."""
_Pinned = tuple[_Charger, _Session, float, str]
"""A session held at a fixed limit (A per phase) outside the allocator, and why."""


def _rescaled(amps: float, planned: float, kept: float) -> float:
    """``amps`` of a profile planned at ``planned`` A, for the same profile kept at ``kept``."""
    if amps == planned or planned <= 0:
        return kept if amps == planned else amps
    return amps * kept / planned


def _phases_of(values: Iterable[float]) -> PerPhase:
    a, b, c = values
    return (a, b, c)


# --------------------------------------------------------------------------------------------


class LoadController:
    """Keeps the chargers within the site's limit. Implements the proxy's ``ChargerObserver``
    and ``CloudCallFilter`` (``edgegw.proxy.hooks``).

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
        self._config = config
        self._site = config.site
        self._models = models
        self._call = call
        self._latest = latest_sample
        self._decisions = decisions
        self._clock = clock
        self._wall = wall_clock
        self._params = params or AllocatorParams(ramp_a_per_s=config.site.ramp_a_per_s)
        self._tuning = tuning or Tuning()
        self._tasks = TaskOwner("loadcap")
        self._chargers: dict[str, _Charger] = {}
        self._removed: set[str] = set()
        """Chargers removed from the configuration: their late events are ignored."""
        for charger in config.chargers:  # fail early on a model name that does not exist
            self._charger(charger.id)
        self._kicked = asyncio.Event()
        self._progress = asyncio.Event()
        self._last_round: float | None = None
        self._last_grid: PerPhase | None = None
        self._meter_state = "waiting"
        self._meter_hold = False
        """The meter's last read failed: its last valid sample is used for cuts, never raises."""
        self._last_result: AllocationResult | None = None
        self._last_non_ev: PerPhase | None = None
        self._meter_age: float | None = None
        self._held_non_ev: list[float | None] = [None, None, None]
        self._closed = False
        self._temporary: tuple[PerPhase, float | None] | None = None  # limit, ends at (clock)
        self._round_listeners: list[RoundListener] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run rounds every ``control_interval`` and whenever an event asks for one."""
        self._tasks.spawn(self._loop(), "rounds")
        self._kick()  # the first round at once

    def set_temporary_limit(self, limit_a: PerPhase | None, duration_s: float | None) -> None:
        """Cap the site below its configured limit for a while (a building manager's peak
        shaving, an MQTT command); ``None`` ends it. It can lower the limit, never raise it
        above the configuration (the main fuse does not change)."""
        if limit_a is None:
            self._temporary = None
        else:
            if any(not math.isfinite(a) or a < 0 for a in limit_a):
                raise ValueError("a temporary limit must be finite and not negative")
            ends = None if duration_s is None else self._clock() + max(0.0, duration_s)
            self._temporary = (limit_a, ends)
        shown = "ended" if limit_a is None else "/".join(f"{a:g}" for a in limit_a) + " A"
        log.info("temporary site limit %s", shown)
        self._kick()

    def set_charger_max(self, charger_id: str, max_current_a: float | None) -> None:
        """A caretaker's maximum for one charger's sessions, at runtime; ``None`` removes it.

        It can lower the configured ``max_current_a``, never raise it (the installer sized
        the cable and the breaker for that). Between 0 and the charger's minimum nothing can
        be signalled, so that is refused; 0 pauses its sessions (refused for a model that a
        0 A profile does not pause). The next round, started at once, applies it. Raises
        :class:`ValueError` saying why a value cannot be used.
        """
        if self._config.charger(charger_id) is None:
            raise ValueError(f"no charger {charger_id!r} is configured")
        ch = self._charger(charger_id)
        if max_current_a is not None:
            self._check_override(ch, max_current_a)
        ch.max_override = max_current_a
        log.info(
            "%s: caretaker maximum %s",
            charger_id,
            "removed" if max_current_a is None else f"{max_current_a:g} A",
        )
        if ch.connected:
            self._replan(ch)  # the safe profile of a charger without sessions follows it too
        self._kick()
        self._bump()

    def charger_max(self, charger_id: str) -> float | None:
        """The caretaker's override of ``charger_id`` (None: the configuration decides)."""
        ch = self._chargers.get(charger_id)
        return None if ch is None else ch.max_override

    def _check_override(self, ch: _Charger, amps: float) -> None:
        configured = max(ch.min_a, ch.config.max_current_a)
        if not math.isfinite(amps) or amps < 0:
            raise ValueError("the maximum current must be a number of amperes, 0 or more")
        if ch.model.cap_purpose is None:
            raise ValueError(
                f"{ch.id} cannot be limited: its model ({ch.model.id}) has no usable smart charging"
            )
        if amps > configured + _EPS:
            raise ValueError(
                f"{amps:g} A is above what {ch.id} is configured for ({configured:g} A); the "
                "maximum can only be lowered here (the installer sets max_current_a)"
            )
        if amps == 0 and not ch.model.can_pause:
            raise ValueError(
                f"{ch.id} cannot be paused with 0 A (its model {ch.model.id} ignores a 0 A "
                f"limit); the lowest maximum is {ch.min_a:g} A"
            )
        if 0 < amps < ch.min_a - _EPS:
            raise ValueError(
                f"{amps:g} A is below {ch.id}'s minimum of {ch.min_a:g} A (a car cannot charge "
                "with less); give at least the minimum, or 0 to pause it"
            )

    def add_round_listener(self, listener: RoundListener) -> Callable[[], None]:
        """Call ``listener`` after every round with the load it saw (it must return at once).
        Returns a function that removes it."""
        self._round_listeners.append(listener)

        def remove() -> None:
            if listener in self._round_listeners:
                self._round_listeners.remove(listener)

        return remove

    def _limits(self) -> PerPhase:
        """The limit in force: the configured one, lowered by a temporary limit while it lasts."""
        configured = self._site.limits()
        temporary = self._temporary
        if temporary is None:
            return configured
        limit, ends = temporary
        if ends is not None and self._clock() >= ends:
            self._temporary = None
            log.info("temporary site limit expired")
            return configured
        return _phases_of(min(configured[p], limit[p]) for p in Phase)

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
        return all(not ch.pending() for ch in self._chargers.values() if ch.connected)

    async def wait_settled(self, timeout: float = 10.0) -> None:
        await self.wait_until(self.settled, timeout)

    # ------------------------------------------------------------------ chargers

    def _charger(self, charger_id: str) -> _Charger:
        ch = self._chargers.get(charger_id)
        if ch is None:
            config = self._config.charger(charger_id) or ChargerConfig(id=charger_id)
            ch = self._make_charger(config)
            self._chargers[charger_id] = ch
        return ch

    def _make_charger(self, config: ChargerConfig) -> _Charger:
        model = model_for(self._models, config)
        ch = _Charger(
            id=config.id,
            config=config,
            model=model,
            wiring=tuple(Phase(i) for i in config.site_phases()),
            wake=asyncio.Event(),
        )
        if model.cap_purpose is None:
            ch.flags.add(Flag.NOT_CONTROLLABLE)
        elif model.cap_purpose is Purpose.TX:
            ch.flags.add(Flag.NO_SAFE_PROFILE)
        return ch

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
        if config.site != self._site:
            raise ValueError("the [site] section changed: restart edgegw to apply it")
        fresh: dict[str, _Charger] = {}
        for charger in config.chargers:  # check every new model before changing anything
            known = self._chargers.get(charger.id)
            if known is None or known.config != charger:
                fresh[charger.id] = self._make_charger(charger)
        old_ids = {c.id for c in self._config.chargers}
        new_ids = {c.id for c in config.chargers}
        self._config = config
        for charger_id, made in fresh.items():
            known = self._chargers.get(charger_id)
            if known is None:
                self._chargers[charger_id] = made
                self._removed.discard(charger_id)
                log.info("%s added to load capping", charger_id)
                continue
            known.config = made.config  # a live setting changed (label, password...)
            if known.model is not made.model or known.wiring != made.wiring:
                known.model, known.wiring = made.model, made.wiring
                known.flags = (known.flags - _MODEL_FLAGS) | (made.flags & _MODEL_FLAGS)
                if known.connected:
                    self._replan(known)
        for charger_id in sorted(new_ids):
            back = self._chargers.get(charger_id)
            if back is not None and back.retired:  # removed while charging, and back again
                back.retired = False
                log.info("%s is back in load capping", charger_id)
        for charger_id in sorted(old_ids - new_ids):
            self._retire(charger_id)
        self._kick()
        self._bump()

    def _retire(self, charger_id: str) -> None:
        """``charger_id`` left the configuration: stop controlling it (see :meth:`use_config`)."""
        ch = self._chargers.get(charger_id)
        if ch is None:
            return
        drawing = [s for s in ch.sessions.values() if self._offered(ch, s.connector) > 0]
        measured = self._site.meter_role == "grid" and self._meter_state != "lost"
        if drawing and not measured:
            # Its car may still draw and nothing measures it (a non-EV meter, or a grid meter
            # that is lost): counted at its limit in force until its session ends or, with a
            # grid meter, until the meter reads again once the charger has gone (from then on
            # the meter measures that car as building load).
            ch.retired = True
            log.warning(
                "%s removed from the configuration while charging: its %d session(s) stay "
                "counted at their limit in force until %s",
                charger_id,
                len(drawing),
                "the grid meter measures them"
                if self._site.meter_role == "grid"
                else "they end (the site meter does not measure the chargers)",
            )
            return
        self._drop(ch)

    async def pause_removed(self, charger_ids: Iterable[str], timeout: float = 10.0) -> None:
        """Send the removed chargers still counted (see :meth:`use_config`) their pause
        profile (0 A, or the minimum of a model that 0 A does not pause) and wait, at most
        ``timeout`` seconds, for their answers. Call it before closing their connections: once
        a charger has acknowledged its pause its sessions count at that limit, and once it
        has gone at 0 A (chargers keep their profiles) nothing of it is counted any more.
        Its StopTransaction may never come: a removed charger cannot connect again."""
        pausing = []
        for charger_id in charger_ids:
            ch = self._chargers.get(charger_id)
            if ch is None or not ch.retired or not ch.connected or not ch.sessions:
                continue
            if ch.model.cap_purpose is None:
                continue  # nothing can pause it: it stays counted at its maximum
            paused = iec_limit(ch.model, 0.0, ch.min_a)
            for session in ch.sessions.values():
                session.limit_a = paused
                session.reason = "removed"
            self._replan(ch)
            log.info("%s removed while charging: sending it %g A before it goes", ch.id, paused)
            pausing.append(ch)

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

    def _release_retired(self) -> None:
        """The grid meter reads, and measures the cars of removed chargers that have gone."""
        for ch in [c for c in self._chargers.values() if c.retired and not c.connected]:
            self._drop(ch)

    def _drop(self, ch: _Charger) -> None:
        if self._site.meter_role == "grid" and not ch.retired:
            # Its cars were allocator sessions, outside the held estimate of the building
            # load; from now on the grid meter counts what they still draw as building load:
            # at most their limits in force. Without that the estimate jumps to its upper
            # bound (every unmeasured car counted as building load) and pauses the others.
            for session in ch.sessions.values():
                offered = self._offered(ch, session.connector)
                for p in session.car_phases or ch.site_phases:
                    held = self._held_non_ev[p]
                    if held is not None:
                        self._held_non_ev[p] = held + offered
        del self._chargers[ch.id]
        self._removed.add(ch.id)
        if ch.sender is not None:
            ch.sender.cancel("charger removed from the configuration")
        log.info("%s removed from load capping: its share goes back to the others", ch.id)
        self._kick()
        self._bump()

    def _known(self, charger_id: str) -> _Charger | None:
        """The charger an event is about, or None for one removed from the configuration."""
        if charger_id in self._removed:
            return None
        return self._charger(charger_id)

    def _safe_limit(self, ch: _Charger) -> float:
        """What the whole charger may draw per phase when nothing else is known."""
        fallback = ch.config.fallback_current_a
        if ch.max_override is not None:
            fallback = min(fallback, ch.max_override)
        return iec_limit(ch.model, fallback, ch.min_a)

    def _ensure_sender(self, ch: _Charger) -> None:
        if (ch.sender is None or ch.sender.done()) and not self._closed:
            ch.sender = self._tasks.spawn(self._sender(ch), f"profiles/{ch.id}")

    # ------------------------------------------------------------------ ChargerObserver

    def charger_connected(self, charger_id: str) -> None:
        self._removed.discard(charger_id)  # let in again: a charger of its own now
        ch = self._charger(charger_id)
        ch.connected = True
        ch.failures = 0
        # Whatever it had may be gone (some chargers drop profiles on reconnect): resend all.
        self._replan(ch)
        ch.stale = set(ch.desired)
        self._ensure_sender(ch)
        ch.wake.set()
        self._kick()
        self._bump()

    def charger_disconnected(self, charger_id: str) -> None:
        ch = self._chargers.get(charger_id)
        if ch is None:
            return
        ch.connected = False
        ch.wake.set()  # the sender notices and waits for the next connect
        if ch.retired and all(self._offered(ch, s.connector) <= 0 for s in ch.sessions.values()):
            self._drop(ch)  # removed, and paused: it keeps its 0 A profile, nothing can draw
            return
        self._kick()
        self._bump()

    def charger_exchanged(
        self, charger_id: str, action: str, request: JsonDict, response: JsonDict
    ) -> None:
        ch = self._known(charger_id)
        if ch is None:
            return
        try:
            if action == "StatusNotification":
                self._on_status(ch, request)
            elif action == "StartTransaction":
                self._on_start(ch, request, response)
            elif action == "StopTransaction":
                self._on_stop(ch, request)
            elif action == "MeterValues":
                self._on_meter_values(ch, request)
            elif action == "BootNotification":
                # A reboot ends transactions (and their TxProfiles) and may clear the rest.
                self._forget(ch, [k for k in ch.acked if k.purpose is Purpose.TX])
                ch.stale = set(ch.desired)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: cannot use %s for load capping: %s", charger_id, action, exc)

    def _new_session(self, ch: _Charger, connector: int) -> _Session:
        session = _Session(
            connector=connector,
            arrived_at=self._clock(),
            started_wall=self._wall(),
            offered_since=self._clock(),
        )
        ch.sessions[connector] = session
        ch.connectors.add(connector)
        return session

    def _on_status(self, ch: _Charger, request: JsonDict) -> None:
        connector = int(request["connectorId"])
        status = str(request["status"])
        if connector <= 0:
            return
        ch.connectors.add(connector)
        session = ch.sessions.get(connector)
        if status in _SESSION_STATUSES:
            if session is None:
                session = self._new_session(ch, connector)
                self._kick()
            elif session.status != status:
                self._kick()
            session.status = status
        elif status in _IDLE_STATUSES and session is not None:
            self._end_session(ch, connector)

    def _on_start(self, ch: _Charger, request: JsonDict, response: JsonDict) -> None:
        connector = int(request["connectorId"])
        session = ch.sessions.get(connector) or self._new_session(ch, connector)
        tx = response.get("transactionId")
        session.transaction_id = int(tx) if tx is not None else None
        self._kick()

    def _on_stop(self, ch: _Charger, request: JsonDict) -> None:
        tx = request.get("transactionId")
        for connector, session in list(ch.sessions.items()):
            if session.transaction_id == tx:
                self._end_session(ch, connector)

    def _end_session(self, ch: _Charger, connector: int) -> None:
        session = ch.sessions.pop(connector, None)
        if session is None:
            return
        if session.ignoring and not any(s.ignoring for s in ch.sessions.values()):
            ch.flags.discard(Flag.IGNORES_LIMIT)
        # The charger deletes a TxProfile when its transaction ends (spec-facts §2.1).
        for key in [k for k in ch.acked if k.connector_id == connector and k.purpose is Purpose.TX]:
            del ch.acked[key]
            ch.desired.pop(key, None)
        for pid, cloud in list(ch.cloud.items()):
            profile = cloud.profile
            if (
                cloud.connector == connector
                and profile.get("chargingProfilePurpose") == "TxProfile"
            ):
                del ch.cloud[pid]
        if ch.retired and not ch.sessions:
            self._drop(ch)
            return
        self._replan(ch)
        self._kick()

    def _on_meter_values(self, ch: _Charger, request: JsonDict) -> None:
        connector = int(request["connectorId"])
        if connector <= 0:
            return
        session = ch.sessions.get(connector)
        tx = request.get("transactionId")
        if session is None:
            if tx is None:
                return
            session = self._new_session(ch, connector)  # a session we missed the start of
            self._kick()
        if tx is not None and session.transaction_id is None:
            session.transaction_id = int(tx)
        entries = request.get("meterValue") or []
        if not entries:
            return
        measured = self._parse_currents(ch, entries[-1].get("sampledValue") or [])
        if measured is None:
            return
        session.measured_a = measured
        session.measured_at = self._clock()
        biggest = max(measured)
        if biggest >= self._tuning.draw_threshold_a:
            floor = max(self._tuning.draw_threshold_a, 0.2 * biggest)
            drawing = frozenset(p for p in ch.site_phases if measured[p] >= floor)
            if drawing:
                session.car_phases = drawing

    def _parse_currents(self, ch: _Charger, values: list[Any]) -> PerPhase | None:
        """Per site phase A from one meterValue's Current.Import (or Power.Active.Import)."""
        per_charger_phase: dict[int, float] = {}
        unphased: float | None = None
        power: float | None = None
        for item in values:
            if not isinstance(item, Mapping):
                continue
            measurand = item.get("measurand", "Energy.Active.Import.Register")
            location = item.get("location", "Outlet")
            if location not in ("Outlet", "Body", "Cable", "EV"):
                continue
            try:
                value = float(item["value"])
            except (KeyError, TypeError, ValueError):
                continue
            if not math.isfinite(value):
                continue
            if measurand == "Current.Import":
                phase = str(item.get("phase", ""))
                if phase[:2] in ("L1", "L2", "L3") and not phase.startswith(
                    ("L1-L", "L2-L", "L3-L")
                ):
                    per_charger_phase[int(phase[1]) - 1] = value
                elif not phase:
                    unphased = value
            elif measurand == "Power.Active.Import" and "phase" not in item:
                factor = 1000.0 if item.get("unit") == "kW" else 1.0
                power = value * factor
        site = [0.0, 0.0, 0.0]
        if per_charger_phase:
            for index, amps in per_charger_phase.items():
                if index < len(ch.wiring):
                    site[ch.wiring[index]] += max(0.0, amps)
            return _phases_of(site)
        if unphased is None and power is not None:
            unphased = power / (NOMINAL_VOLTAGE * len(ch.wiring))
        if unphased is None:
            return None
        for wired in ch.wiring:
            site[wired] = max(0.0, unphased)
        return _phases_of(site)

    # ------------------------------------------------------------------ CloudCallFilter

    def filter_cloud_call(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        ch = self._known(charger_id)
        if ch is None:
            return payload
        if action == "SetChargingProfile":
            connector = payload.get("connectorId")
            cap = GatewayCap.for_model(ch.model, self._cap_limit(ch, connector))
            return clamp_cloud_profile(payload, cap)
        if action == "ClearChargingProfile":
            return remap_cloud_clear(payload, ch.model)
        if action == "RemoteStartTransaction" and isinstance(payload.get("chargingProfile"), dict):
            connector = payload.get("connectorId")
            cap = GatewayCap.for_model(ch.model, self._cap_limit(ch, connector or 1))
            wrapped = clamp_cloud_profile(
                {"connectorId": connector or 1, "csChargingProfiles": payload["chargingProfile"]},
                cap,
            )
            return {**payload, "chargingProfile": wrapped["csChargingProfiles"]}
        return payload

    def cloud_call_answered(
        self, charger_id: str, action: str, payload: JsonDict, response: JsonDict | None
    ) -> None:
        if response is None or response.get("status") != "Accepted":
            return
        ch = self._known(charger_id)
        if ch is None:
            return
        if action == "SetChargingProfile":
            self._cloud_profile_installed(ch, payload)
        elif action == "ClearChargingProfile":
            self._cloud_profiles_cleared(ch, payload)
        elif action == "RemoteStartTransaction" and isinstance(
            payload.get("chargingProfile"), dict
        ):
            profile = dict(payload["chargingProfile"])
            pid = profile.get("chargingProfileId")
            if isinstance(pid, int):
                ch.cloud[pid] = _CloudProfile(
                    int(payload.get("connectorId") or 1), profile, self._wall()
                )
        self._kick()
        self._bump()

    def _cloud_profile_installed(self, ch: _Charger, payload: JsonDict) -> None:
        profile = payload.get("csChargingProfiles")
        connector = payload.get("connectorId")
        if not isinstance(profile, dict) or not isinstance(connector, int):
            return
        pid = profile.get("chargingProfileId")
        # Same id, or same (connector, purpose, stack level): the new one replaces the old.
        for old_id, old in list(ch.cloud.items()):
            same_slot = (
                old.connector == connector
                and old.profile.get("chargingProfilePurpose")
                == profile.get("chargingProfilePurpose")
                and old.profile.get("stackLevel") == profile.get("stackLevel")
            )
            if old_id == pid or same_slot:
                del ch.cloud[old_id]
        if isinstance(pid, int):
            ch.cloud[pid] = _CloudProfile(connector, dict(profile), self._wall())
        if profile.get("chargingProfilePurpose") == Purpose.TX.value:
            session = ch.sessions.get(connector)
            if session is not None:
                session.cloud_tx = True
        replaced = replaced_gateway_keys(payload, ch.model, ch.acked)
        if replaced:
            log.info(
                "%s: the cloud's profile replaced the gateway's %s; re-asserting the cap",
                ch.id,
                ", ".join(sorted(map(str, replaced))),
            )
            self._forget(ch, replaced)

    def _cloud_profiles_cleared(self, ch: _Charger, payload: JsonDict) -> None:
        pid = payload.get("id")
        for old_id, old in list(ch.cloud.items()):
            profile = old.profile
            if pid is not None:
                hit = old_id == pid
            else:
                hit = (
                    payload.get("connectorId") in (None, old.connector)
                    and payload.get("chargingProfilePurpose")
                    in (None, profile.get("chargingProfilePurpose"))
                    and payload.get("stackLevel") in (None, profile.get("stackLevel"))
                )
            if hit:
                del ch.cloud[old_id]
        for session in ch.sessions.values():
            session.cloud_tx = any(
                c.connector == session.connector
                and c.profile.get("chargingProfilePurpose") == Purpose.TX.value
                for c in ch.cloud.values()
            )
        cleared = cleared_gateway_keys(payload, ch.model, ch.acked)
        if cleared:
            log.info(
                "%s: a cloud ClearChargingProfile removed the gateway's %s; re-asserting the cap",
                ch.id,
                ", ".join(sorted(map(str, cleared))),
            )
            self._forget(ch, cleared)

    def _forget(self, ch: _Charger, keys: Iterable[ProfileKey]) -> None:
        """These gateway profiles are gone from the charger: count them so, and resend."""
        for key in keys:
            ch.acked.pop(key, None)
            if key in ch.desired:
                ch.stale.add(key)
        self._replan(ch)
        ch.wake.set()

    # ------------------------------------------------------------------ meter

    def meter_event(self) -> None:
        """A new site-meter sample arrived: start a round at once if it matters."""
        sample = self._latest()
        if sample is None:
            return
        currents = sample.reading.currents_a
        if any(c is None or not math.isfinite(c) for c in currents):
            self._kick()
            return
        grid = _phases_of(float(c) for c in currents if c is not None)
        last = self._last_grid
        limits = self._limits()
        if (
            last is None
            or any(grid[p] > limits[p] - self._site.margin_a for p in Phase)
            or any(abs(grid[p] - last[p]) >= self._tuning.jump_a for p in Phase)
        ):
            self._kick()

    def _grid(self, now: float) -> PerPhase | None:
        sample = self._latest()
        if sample is None:
            self._meter_age = None
            if self._meter_state == "ok":
                self._set_meter_state("lost", "no site-meter sample any more")
            return None
        age = now - sample.at
        self._meter_age = age
        currents = sample.reading.currents_a
        if any(c is None or not math.isfinite(c) for c in currents):
            self._set_meter_state("lost", "the site meter gives no valid phase currents")
            return None
        if age > self._site.meter_lost_after:
            self._set_meter_state("lost", f"the last site-meter sample is {age:.1f} s old")
            return None
        self._set_meter_state("ok", "")
        failed = isinstance(sample, FailAwareSample) and sample.failed_at is not None
        if failed != self._meter_hold:
            self._meter_hold = failed
            if failed:
                log.info(
                    "site meter read failed: limits held (cuts only) on its last valid reading "
                    "until it reads again, fallback after %g s",
                    self._site.meter_lost_after,
                )
            else:
                log.info("site meter reads again: limits may rise again")
        return _phases_of(max(0.0, float(c)) for c in currents if c is not None)

    def _set_meter_state(self, state: str, why: str) -> None:
        if state == self._meter_state:
            return
        if state == "lost":
            fallback = self._site.fallback()
            log.warning(
                "load capping in fallback mode: %s (EVs share %s)",
                why,
                "nothing, all paused" if fallback is None else f"{fallback} A per phase",
            )
        elif self._meter_state == "lost":
            log.info("site meter readings are back: load capping follows the meter again")
        self._meter_state = state

    # ------------------------------------------------------------------ the round

    def _offered(self, ch: _Charger, connector: int) -> float:
        """The limit in force on ``connector``: the composite of the acknowledged profiles."""
        session = ch.sessions.get(connector)
        cp: float | None = None
        tx: float | None = None
        tx_default_own: float | None = None
        tx_default_all: float | None = None
        for key, cmd in ch.acked.items():
            value = cmd.covers.get(connector, cmd.default_a)
            if value is None:
                continue
            if key.purpose is Purpose.CHARGE_POINT_MAX:
                cp = value
            elif key.purpose is Purpose.TX and key.connector_id == connector:
                if session is None or cmd.transaction_id in (None, session.transaction_id):
                    tx = value
            elif key.purpose is Purpose.TX_DEFAULT:
                if key.connector_id == connector:
                    tx_default_own = value
                elif key.connector_id == 0:
                    tx_default_all = value
        tx_part = (
            tx
            if tx is not None
            else tx_default_own
            if tx_default_own is not None
            else tx_default_all
        )
        limits = [v for v in (cp, tx_part) if v is not None]
        return min(limits) if limits else ch.config.max_current_a

    def _track_offered(self, session: _Session, offered: float, now: float) -> None:
        previous = session.last_offered
        if previous is not None and abs(previous - offered) < _EPS:
            return
        if offered > 0 and not previous:
            session.started_at = now
        elif offered <= 0 and previous:
            session.paused_at = now
        if previous is None or offered < previous:
            session.cut_at = now
        session.last_offered = offered
        session.offered_since = now

    def _cloud_cap(self, ch: _Charger, session: _Session, phases: int, wall: float) -> float | None:
        """The cloud's own limit for this session now (its profiles, composited)."""
        best: dict[tuple[str, int], tuple[int, float]] = {}
        for cloud in ch.cloud.values():
            profile = cloud.profile
            purpose = str(profile.get("chargingProfilePurpose"))
            if purpose == Purpose.TX.value:
                if cloud.connector != session.connector:
                    continue
                tx = profile.get("transactionId")
                if tx is not None and tx != session.transaction_id:
                    continue
                anchor = session.started_wall
            elif purpose == Purpose.TX_DEFAULT.value:
                if cloud.connector not in (0, session.connector):
                    continue
                anchor = session.started_wall
            elif purpose == Purpose.CHARGE_POINT_MAX.value:
                anchor = cloud.received_wall
            else:
                continue
            limit = profile_limit_a(profile, wall, anchor=anchor, phases=phases)
            if limit is None:
                continue
            stack = profile.get("stackLevel")
            level = stack if isinstance(stack, int) else 0
            slot = (purpose, cloud.connector)
            if slot not in best or level > best[slot][0]:
                best[slot] = (level, limit)
        caps: list[float] = []
        cp = best.get((Purpose.CHARGE_POINT_MAX.value, 0))
        if cp is not None:
            caps.append(cp[1] / max(1, len(ch.sessions)))
        for slot in (
            (Purpose.TX.value, session.connector),
            (Purpose.TX_DEFAULT.value, session.connector),
            (Purpose.TX_DEFAULT.value, 0),
        ):
            if slot in best:
                caps.append(best[slot][1])
                break
        return min(caps) if caps else None

    def _cap_limit(self, ch: _Charger, connector: object) -> float | None:
        """The cap a cloud profile on ``connector`` is clamped to (0: the whole charger)."""
        if ch.model.cap_purpose is None:
            return None
        decided = [s.limit_a for s in ch.sessions.values() if s.limit_a is not None]
        safe = self._safe_limit(ch)
        if connector == 0:
            if ch.model.cap_purpose is Purpose.CHARGE_POINT_MAX:
                return sum(decided) if decided else safe
            return max([*decided, safe])
        session = ch.sessions.get(connector) if isinstance(connector, int) else None
        if session is not None and session.limit_a is not None:
            return session.limit_a
        return safe

    def run_round(self) -> AllocationResult:
        """Decide every session's limit now and queue the profiles that change."""
        now = self._clock()
        wall = self._wall()
        dt = 0.0 if self._last_round is None else max(0.0, now - self._last_round)
        self._last_round = now
        grid = self._grid(now)
        if grid is not None:
            self._last_grid = grid
            if self._site.meter_role == "grid" and not self._meter_hold:
                self._release_retired()
        else:
            self._held_non_ev = [None, None, None]
            self._meter_hold = False
        eligible, pinned = self._collect(now, wall)
        base_non_ev: PerPhase | None = None
        if grid is not None:
            if self._site.meter_role == "grid":
                base_non_ev = self._estimate_non_ev(grid, eligible)
            else:
                base_non_ev = grid
        hold = grid is not None and self._meter_hold
        result, eligible, forced, non_ev = self._allocate(
            base_non_ev, eligible, pinned, now, dt, hold=hold
        )
        result = self._pauses_kept(result, eligible, now)
        self._apply(result, eligible, forced, pinned, now)
        self._last_result = result
        self._last_non_ev = non_ev
        if self._round_listeners:
            ev = self._ev_load()
            site_grid = grid
            if site_grid is not None and self._site.meter_role != "grid":  # it measures the rest
                site_grid = _phases_of(site_grid[p] + ev[p] for p in Phase)
            self._tell_round(RoundLoad(wall, site_grid, ev, base_non_ev))
        if self._decisions is not None:
            self._decisions.record(
                wall,
                result.mode.value,
                self._inputs(grid, non_ev, eligible, forced, pinned),
                self._outputs(result),
            )
        self._bump()
        return result

    def _ev_load(self) -> PerPhase:
        """What the connected chargers' sessions last measured, per site phase."""
        total = [0.0, 0.0, 0.0]
        for ch in self._chargers.values():
            if not ch.connected:
                continue
            for session in ch.sessions.values():
                if session.measured_a is not None:
                    for p in Phase:
                        total[p] += session.measured_a[p]
        return _phases_of(total)

    def _tell_round(self, load: RoundLoad) -> None:
        for listener in tuple(self._round_listeners):
            try:
                listener(load)
            except Exception:  # a recorder's bug must not end load capping
                log.exception("load-capping round listener %r failed", listener)

    def _collect(self, now: float, wall: float) -> tuple[list[_Eligible], list[_Pinned]]:
        """Sessions for the allocator, and those decided outside it (held at a fixed limit)."""
        eligible: list[_Eligible] = []
        pinned: list[_Pinned] = []
        for ch in self._chargers.values():
            for session in ch.sessions.values():
                offered = self._offered(ch, session.connector)
                self._track_offered(session, offered, now)
                self._check_ignoring(ch, session, offered, now)
                phases = session.car_phases or ch.site_phases
                if ch.model.cap_purpose is None:
                    pinned.append((ch, session, ch.config.max_current_a, "not_controllable"))
                    continue
                if ch.retired:
                    pinned.append((ch, session, offered, "removed"))
                    continue
                if session.ignoring and session.measured_a is not None:
                    # It draws what it likes: count that as load we do not control, so the
                    # others get what is really left. Its limit stays where it was.
                    pinned.append((ch, session, max(offered, *session.measured_a), "ignores_limit"))
                    continue
                if not ch.connected:
                    pinned.append((ch, session, offered, "charger_offline"))
                    continue
                min_a = ch.min_a
                if ch.max_override is not None and ch.max_override < min_a - _EPS:
                    held = 0.0 if ch.model.can_pause else min_a
                    pinned.append((ch, session, held, "caretaker_pause"))
                    continue
                max_a = ch.max_a
                cloud = self._cloud_cap(ch, session, len(phases), wall)
                if cloud is not None and cloud < min_a - _EPS:
                    held = 0.0 if ch.model.can_pause else min_a
                    pinned.append((ch, session, held, "cloud_limit"))
                    continue
                if cloud is not None:
                    max_a = max(min_a, min(max_a, cloud))
                measured = session.measured_a
                if measured is not None:  # the excess over the limit is load we do not control
                    measured = _phases_of(min(measured[p], offered) for p in Phase)
                allocator_session = Session(
                    charger_id=ch.id,
                    connector=session.connector,
                    priority=Priority(ch.config.priority),
                    min_a=min_a,
                    max_a=max_a,
                    fallback_a=ch.config.fallback_current_a / max(1, len(ch.sessions)),
                    charger_phases=ch.site_phases,
                    car_phases=session.car_phases,
                    measured_a=measured,
                    offered_a=offered,
                    arrived_at=session.arrived_at,
                    started_at=session.started_at,
                    paused_at=session.paused_at,
                )
                eligible.append((ch, session, allocator_session))
        return eligible, pinned

    def _allocate(
        self,
        base_non_ev: PerPhase | None,
        eligible: list[_Eligible],
        pinned: list[_Pinned],
        now: float,
        dt: float,
        *,
        hold: bool = False,
    ) -> tuple[AllocationResult, list[_Eligible], list[_Eligible], PerPhase | None]:
        """Run the allocator; a session it pauses on a charger that cannot pause is held at
        its minimum as fixed load and the others are allocated again around it. With
        ``hold`` (the meter's last read failed) no session gets more than its limit in
        force (:meth:`_held`); one that this leaves at 0 on a charger that cannot pause is
        held at its minimum the same way (its profile cannot say 0 A)."""
        grid_role = self._site.meter_role == "grid"
        fixed = [0.0, 0.0, 0.0]  # what held sessions may add to the non-EV load
        fallback_draw = [0.0, 0.0, 0.0]  # what they take from the fallback budget
        for ch, session, held, _ in pinned:
            for p in session.car_phases or ch.site_phases:
                drawn = session.measured_a[p] if session.measured_a is not None else 0.0
                # With a grid meter what it draws is in the reading: count what it may add.
                fixed[p] += max(0.0, held - drawn) if grid_role else held
                fallback_draw[p] += held
        fallback = self._site.fallback()
        forced: list[_Eligible] = []
        while True:
            extra = list(fixed)
            budget_used = list(fallback_draw)
            for _, _, s in forced:
                for p in s.phases:
                    extra[p] += s.min_a
                    budget_used[p] += s.min_a
            non_ev = (
                None
                if base_non_ev is None
                else _phases_of(base_non_ev[p] + extra[p] for p in Phase)
            )
            fallback_budget = (
                None
                if fallback is None
                else _phases_of(max(0.0, fallback[p] - budget_used[p]) for p in Phase)
            )
            site = Site(
                limit_a=self._limits(),
                margin_a=self._site.margin_a,
                fallback_ev_a=fallback_budget,
            )
            state = SiteState(
                site=site,
                non_ev_a=non_ev,
                sessions=tuple(s for _, _, s in eligible),
                now=now,
                dt_s=dt,
            )
            result = allocate(state, self._params)
            if hold:
                result = self._held(result, eligible)
            newly = [
                entry
                for entry, allocation in zip(eligible, result.allocations, strict=True)
                if allocation.limit_a < entry[2].min_a - _EPS and not entry[0].model.can_pause
            ]
            if not newly:
                return result, eligible, forced, non_ev
            forced.extend(newly)
            eligible = [e for e in eligible if all(e is not n for n in newly)]

    @staticmethod
    def _held(result: AllocationResult, eligible: list[_Eligible]) -> AllocationResult:
        """``result`` with no raise and no start: each session keeps at most its limit in force.

        Used while the meter's last read failed: its last valid sample may still call for a
        cut, but nothing it says justifies giving more (the site may have changed since).
        """
        allocations = []
        used = [0.0, 0.0, 0.0]
        for (_, _, s), decided in zip(eligible, result.allocations, strict=True):
            kept = decided
            if decided.limit_a > s.offered_a + _EPS:
                kept = replace(decided, limit_a=max(0.0, s.offered_a), reason=Reason.METER_HOLD)
            allocations.append(kept)
            for p in kept.phases:
                used[p] += kept.limit_a
        budget = result.budget_a
        return replace(
            result,
            allocations=tuple(allocations),
            used_a=_phases_of(used),
            headroom_a=_phases_of(budget[p] - used[p] for p in Phase),
            notes=(*result.notes, "meter read failed: raises held"),
        )

    def _pauses_kept(
        self, result: AllocationResult, eligible: list[_Eligible], now: float
    ) -> AllocationResult:
        """``result`` with every session a round paused kept paused for ``min_pause_s``.

        The allocator's pause hold counts from the acknowledged pause (``offered_a`` 0). A
        round that runs while the 0 A profile is still on its way sees the session running at
        its old limit and may give it current again; the next round, with the pause
        acknowledged, pauses it again: each round undoes the profile in flight and the charger
        gets the same two profiles again and again. A pause holds from the decision instead.
        """
        hold = self._params.min_pause_s
        allocations = []
        changed = False
        used = list(result.used_a)
        for (ch, session, _), decided in zip(eligible, result.allocations, strict=True):
            since = session.pause_decided_at
            kept = decided
            if (
                ch.model.can_pause
                and decided.limit_a > 0
                and session.limit_a == 0
                and since is not None
                and now - since < hold
            ):
                for p in decided.phases:
                    used[p] -= decided.limit_a
                kept = replace(decided, limit_a=0.0, reason=Reason.PAUSED_HOLD)
                changed = True
            allocations.append(kept)
        if not changed:
            return result
        budget = result.budget_a
        return replace(
            result,
            allocations=tuple(allocations),
            used_a=_phases_of(used),
            headroom_a=_phases_of(budget[p] - used[p] for p in Phase),
        )

    def _apply(
        self,
        result: AllocationResult,
        eligible: list[_Eligible],
        forced: list[_Eligible],
        pinned: list[_Pinned],
        now: float,
    ) -> None:
        """Record the round's decisions on the sessions and replan every charger."""
        for (_, session, _), allocation in zip(eligible, result.allocations, strict=True):
            if allocation.limit_a > 0:
                session.pause_decided_at = None
            elif session.limit_a is not None and session.limit_a > 0:
                session.pause_decided_at = now
            session.limit_a = allocation.limit_a
            session.reason = allocation.reason.value
            session.forced = False
        for _, session, s in forced:
            session.limit_a = s.min_a
            session.reason = "cannot_pause"
            session.forced = True
        for _, session, held, why in pinned:
            if why == "removed" and session.limit_a is not None:
                session.limit_a = min(held, session.limit_a)  # a pause sent to it stays
            elif why != "ignores_limit" or session.limit_a is None:
                session.limit_a = held
            session.reason = why
            session.forced = False
        for ch in self._chargers.values():
            if any(s.forced for s in ch.sessions.values()):
                if Flag.CANNOT_PAUSE not in ch.flags:
                    log.warning(
                        "%s cannot be paused (model %s): held at its minimum %.1f A",
                        ch.id,
                        ch.model.id,
                        ch.min_a,
                    )
                ch.flags.add(Flag.CANNOT_PAUSE)
            else:
                ch.flags.discard(Flag.CANNOT_PAUSE)
            if ch.connected and not ch.retired:
                self._replan(ch)

    def _estimate_non_ev(self, grid: PerPhase, eligible: list[_Eligible]) -> PerPhase:
        """The load that is not ours, from a grid meter that also measures the chargers.

        A charger's MeterValues come every few seconds to a minute, the grid meter every
        second, so the cars' own draw is known only roughly: at least what they last
        measured (capped at their limit in force), at most their limits. Per phase that gives
        ``grid - possible <= non-EV <= grid - known``. The upper bound is the safe one, but
        right after a raise it counts the car's ramp-up as building load and would take the
        raise back at once, again and again until the next MeterValues. So the estimate from
        the last moment every session on the phase had measured since its limit last changed
        is *held* while it stays within the bounds, and the upper bound is used as soon as it
        does not (the building load provably changed), or when there is no such estimate.
        A car that measured at its limit after the limit took effect counts at its limit.
        """
        tolerance = self._tuning.follow_tolerance_a
        known = [0.0, 0.0, 0.0]
        possible = [0.0, 0.0, 0.0]
        unsettled: set[Phase] = set()
        for _, session, s in eligible:
            offered = s.offered_a
            measured = session.measured_a
            settled = (
                measured is not None
                and session.measured_at is not None
                and session.measured_at >= session.offered_since
            )
            following = settled and measured is not None and max(measured) >= offered - tolerance
            for p in s.phases:
                possible[p] += offered
                if following:
                    known[p] += offered
                elif measured is not None:
                    known[p] += min(measured[p], offered)
                if not settled:
                    unsettled.add(p)
        estimate = [0.0, 0.0, 0.0]
        for p in Phase:
            upper = grid[p] - known[p]
            lower = grid[p] - possible[p]
            held = self._held_non_ev[p]
            if p in unsettled and held is not None and lower - _EPS <= held <= upper + _EPS:
                estimate[p] = held
            else:
                estimate[p] = upper
                self._held_non_ev[p] = upper
        return _phases_of(max(0.0, e) for e in estimate)

    def _replan(self, ch: _Charger) -> None:
        """Recompute the charger's profiles from its sessions' decided limits."""
        if ch.model.cap_purpose is None:
            return
        limits = [
            ConnectorLimit(
                connector_id=s.connector,
                limit_a=s.limit_a,
                phases=len(s.car_phases or ch.site_phases),
                transaction_id=s.transaction_id,
                cloud_tx_profile=s.cloud_tx,
            )
            for s in ch.sessions.values()
            if s.limit_a is not None
        ]
        plan = plan_profiles(
            ch.model,
            limits,
            connectors=ch.connectors,
            safe_limit_a=self._safe_limit(ch),
            charger_phases=len(ch.wiring),
            min_a=ch.min_a,
            now=self._wall(),
        )
        desired: dict[ProfileKey, ProfileCommand] = {}
        for cmd in plan:
            old = ch.desired.get(cmd.key)
            if old is None or self._meaningful(old, cmd):
                desired[cmd.key] = cmd
                continue
            # The old profile stays on the charger, split afresh between its connectors (a
            # session came or went). The split must add up to the old limit, not the new one:
            # what counts as in force is what the charger really has. Counting an unsent
            # raise as in force would hide it from the estimate of the building load, and
            # the next raise would overload the site by as much (plan values are all
            # proportional to the profile's limit, so scaling them is exact).
            desired[cmd.key] = ProfileCommand(
                old.key,
                old.limit_a,
                old.payload,
                {c: _rescaled(a, cmd.limit_a, old.limit_a) for c, a in cmd.covers.items()},
                None
                if cmd.default_a is None
                else _rescaled(cmd.default_a, cmd.limit_a, old.limit_a),
                old.transaction_id,
            )
            acked = ch.acked.get(cmd.key)
            if acked is not None and acked.fingerprint == old.fingerprint:
                ch.acked[cmd.key] = desired[cmd.key]
        ch.desired = desired
        ch.stale &= set(desired)
        if ch.pending():
            self._ensure_sender(ch)
            ch.wake.set()

    def _meaningful(self, old: ProfileCommand, new: ProfileCommand) -> bool:
        if old.fingerprint == new.fingerprint:
            return False
        if old.transaction_id != new.transaction_id:
            return True
        if new.limit_a < old.limit_a - _EPS:
            return True  # a cut is always sent
        if old.limit_a <= 0 or new.limit_a <= 0:
            return True
        return new.limit_a - old.limit_a >= self._site.min_change_a - _EPS

    def _check_ignoring(self, ch: _Charger, session: _Session, offered: float, now: float) -> None:
        tuning = self._tuning
        measured = session.measured_a
        fresh = (
            measured is not None
            and session.measured_at is not None
            and session.measured_at >= session.cut_at + tuning.ignore_grace_s
        )
        over = (
            fresh and measured is not None and max(measured) > offered + tuning.ignore_tolerance_a
        )
        if not over:
            session.over_since = None
            if session.ignoring and fresh:
                session.ignoring = False
                log.info("%s/%d follows its limit again", ch.id, session.connector)
                if not any(s.ignoring for s in ch.sessions.values()):
                    ch.flags.discard(Flag.IGNORES_LIMIT)
            return
        if session.over_since is None:
            session.over_since = now
        if not session.ignoring and now - session.over_since >= tuning.ignore_after_s:
            session.ignoring = True
            ch.flags.add(Flag.IGNORES_LIMIT)
            assert measured is not None
            log.warning(
                "%s/%d draws %.1f A against its limit of %.1f A for %.0f s: the charger "
                "ignores its charging profile; its excess is counted as uncontrolled load",
                ch.id,
                session.connector,
                max(measured),
                offered,
                now - session.over_since,
            )

    # ------------------------------------------------------------------ sending

    async def _sender(self, ch: _Charger) -> None:
        """Send the charger's pending profiles, cuts first, one call at a time."""
        while True:
            await ch.wake.wait()
            ch.wake.clear()
            while ch.connected:
                pending = ch.pending()
                if not pending:
                    break
                cmd = min(pending, key=lambda c: (not self._is_cut(ch, c), c.key.connector_id))
                ok = await self._send(ch, cmd)
                self._bump()
                if not ok:
                    await self._back_off(ch)

    def _is_cut(self, ch: _Charger, cmd: ProfileCommand) -> bool:
        acked = ch.acked.get(cmd.key)
        return acked is None or cmd.limit_a < acked.limit_a

    async def _send(self, ch: _Charger, cmd: ProfileCommand) -> bool:
        try:
            async with asyncio.timeout(self._tuning.call_timeout_s):
                answer = await self._call(ch.id, "SetChargingProfile", cmd.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if ch.connected:  # a charger that just went away is not failing its profiles
                self._failed(ch, cmd, Flag.PROFILE_FAILED, f"{type(exc).__name__}: {exc}")
            return False
        status = answer.get("status") if isinstance(answer, Mapping) else None
        if status != "Accepted":
            self._failed(ch, cmd, Flag.PROFILE_REJECTED, f"answered {status!r}")
            return False
        current = ch.desired.get(cmd.key)
        ch.acked[cmd.key] = (
            current if current is not None and current.fingerprint == cmd.fingerprint else cmd
        )
        if current is not None and current.fingerprint == cmd.fingerprint:
            ch.stale.discard(cmd.key)
        if ch.flags & {Flag.PROFILE_REJECTED, Flag.PROFILE_FAILED}:
            log.info("%s accepts its charging profiles again", ch.id)
            ch.flags -= {Flag.PROFILE_REJECTED, Flag.PROFILE_FAILED}
            ch.last_error = None
        ch.failures = 0
        now = self._clock()
        for session in ch.sessions.values():
            self._track_offered(session, self._offered(ch, session.connector), now)
        return True

    def _failed(self, ch: _Charger, cmd: ProfileCommand, flag: Flag, why: str) -> None:
        ch.failures += 1
        ch.last_error = f"{cmd.key} {cmd.limit_a:.1f} A: {why}"
        if flag not in ch.flags:
            log.warning(
                "%s did not take its charging profile %s: %s; retrying", ch.id, cmd.key, why
            )
        ch.flags.add(flag)

    async def _back_off(self, ch: _Charger) -> None:
        delays = self._tuning.retry_delays_s
        delay = delays[min(ch.failures, len(delays)) - 1] if delays else 0.0
        try:
            async with asyncio.timeout(delay):
                await ch.wake.wait()  # a newer decision, or a (re)connect, ends the wait
        except TimeoutError:
            pass
        ch.wake.clear()

    # ------------------------------------------------------------------ reporting

    def _inputs(
        self,
        grid: PerPhase | None,
        non_ev: PerPhase | None,
        eligible: list[_Eligible],
        forced: list[_Eligible],
        pinned: list[_Pinned],
    ) -> dict[str, Any]:
        def session_row(s: Session) -> dict[str, Any]:
            return {
                "charger": s.charger_id,
                "connector": s.connector,
                "priority": s.priority.value,
                "min_a": s.min_a,
                "max_a": s.max_a,
                "offered_a": s.offered_a,
                "measured_a": s.measured_a,
                "phases": sorted(str(p) for p in s.phases),
            }

        return {
            "grid_a": grid,
            "meter_age_s": self._meter_age,
            "meter_hold": self._meter_hold,
            "meter_role": self._site.meter_role,
            "non_ev_a": non_ev,
            "sessions": [session_row(s) for _, _, s in eligible],
            "held": [
                {
                    "charger": ch.id,
                    "connector": se.connector,
                    "limit_a": s.min_a,
                    "why": "cannot_pause",
                }
                for ch, se, s in forced
            ]
            + [
                {"charger": ch.id, "connector": se.connector, "limit_a": held, "why": why}
                for ch, se, held, why in pinned
            ],
        }

    def _outputs(self, result: AllocationResult) -> dict[str, Any]:
        return {
            "budget_a": result.budget_a,
            "used_a": result.used_a,
            "headroom_a": result.headroom_a,
            "allocations": [
                {
                    "charger": a.charger_id,
                    "connector": a.connector,
                    "limit_a": a.limit_a,
                    "reason": a.reason.value,
                }
                for a in result.allocations
            ],
            "notes": list(result.notes),
            "pending": {
                ch.id: [f"{c.key}={c.limit_a:.1f}" for c in ch.pending()]
                for ch in self._chargers.values()
                if ch.connected and ch.pending()
            },
        }

    def state(self) -> ControllerState:
        """A snapshot for the control socket, the TUI and MQTT."""
        result = self._last_result
        chargers = []
        for ch in sorted(self._chargers.values(), key=lambda c: c.id):
            sessions = tuple(
                SessionState(
                    connector=s.connector,
                    transaction_id=s.transaction_id,
                    status=s.status,
                    limit_a=s.limit_a,
                    offered_a=self._offered(ch, s.connector),
                    measured_a=s.measured_a,
                    phases=tuple(sorted(str(p) for p in (s.car_phases or ch.site_phases))),
                    reason=s.reason,
                    flags=tuple(
                        f
                        for f, on in (
                            (Flag.IGNORES_LIMIT.value, s.ignoring),
                            (Flag.CANNOT_PAUSE.value, s.forced),
                        )
                        if on
                    ),
                )
                for s in sorted(ch.sessions.values(), key=lambda s: s.connector)
            )
            chargers.append(
                ChargerState(
                    id=ch.id,
                    connected=ch.connected,
                    model=ch.model.id,
                    cap_purpose=None
                    if ch.model.cap_purpose is None
                    else ch.model.cap_purpose.value,
                    flags=tuple(sorted(f.value for f in ch.flags)),
                    last_error=ch.last_error,
                    pending_profiles=len(ch.pending()) if ch.connected else 0,
                    sessions=sessions,
                    max_current_a=ch.max_a,
                    max_override_a=ch.max_override,
                )
            )
        return ControllerState(
            mode="idle" if result is None else result.mode.value,
            meter=self._meter_state,
            meter_age_s=self._meter_age,
            limit_a=self._limits(),
            margin_a=self._site.margin_a,
            grid_a=self._last_grid if self._meter_state == "ok" else None,
            non_ev_a=self._last_non_ev,
            budget_a=None if result is None else result.budget_a,
            used_a=None if result is None else result.used_a,
            headroom_a=None if result is None else result.headroom_a,
            chargers=tuple(chargers),
        )

    @property
    def mode(self) -> Mode | None:
        return None if self._last_result is None else self._last_result.mode
