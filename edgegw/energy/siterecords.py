"""The records the load controller's site model keeps: chargers, sessions, the meter.

Plain mutable records, no asyncio and no I/O (:mod:`edgegw.energy.sitemodel` changes them),
with the small derived values each one answers itself: a charger's minimum and maximum, the
limit in force on a connector (:func:`edgegw.energy.inforce.offered_a`), its safe limit, and its
currents per charger phase mapped to site phases by its wiring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from edgegw.config import ChargerConfig
from edgegw.energy.allocator import PerPhase, Phase
from edgegw.energy.chargermodels import ChargerModel
from edgegw.energy.cloudcaps import CloudProfile
from edgegw.energy.inforce import offered_a
from edgegw.energy.nonev import NO_ESTIMATE, HeldEstimate
from edgegw.energy.profiles import ProfileCommand, ProfileKey, iec_limit
from edgegw.energy.registers import Reading


class SampleLike(Protocol):
    """A meter sample: the reading and when it was taken (monotonic seconds)."""

    @property
    def reading(self) -> Reading: ...

    @property
    def at(self) -> float: ...


CircuitSamples = Mapping[str, SampleLike | None]
"""The boards' meter samples, by circuit name (None: none yet)."""


def no_circuit_samples() -> CircuitSamples:
    """The source of board samples of a site model that was given none."""
    return {}


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


MODEL_FLAGS = frozenset({Flag.NOT_CONTROLLABLE, Flag.NO_SAFE_PROFILE})
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


class ModelHooks(Protocol):
    """What the I/O shell does when the model changes."""

    def round_wanted(self) -> None:
        """Something the allocation depends on changed: run a round soon."""

    def changed(self) -> None:
        """Anything changed (wakes whoever waits for a condition)."""

    def send_pending(self, charger_id: str) -> None:
        """The charger has profiles to send: make sure its sender runs, and wake it."""

    def wake(self, charger_id: str) -> None:
        """Wake the charger's sender if it runs (it re-reads the charger's state)."""

    def dropped(self, charger_id: str) -> None:
        """The charger is forgotten: end its sender."""


class NoHooks:
    """Hooks that do nothing (a model driven by hand, as in the pure tests)."""

    def round_wanted(self) -> None:
        pass

    def changed(self) -> None:
        pass

    def send_pending(self, charger_id: str) -> None:
        pass

    def wake(self, charger_id: str) -> None:
        pass

    def dropped(self, charger_id: str) -> None:
        pass


@dataclass(slots=True)
class SessionRecord:
    """A session on one connector, as the controller follows it."""

    connector: int
    arrived_at: float
    started_wall: float
    transaction_id: str | None = None
    """As the events carry it (OCPP 1.6's integer in decimal, OCPP 2.0.1's own string)."""
    status: str = "Charging"
    measured_a: PerPhase | None = None
    """Per site phase, from the charger's MeterValues."""
    measured_at: float | None = None
    car_phases: frozenset[Phase] | None = None
    started_at: float | None = None
    paused_at: float | None = None
    last_offered: float | None = None
    offered_since: float = 0.0
    earlier_offers: list[tuple[float, float]] = field(default_factory=list)
    """The limits in force before ``offered_since``, each as (until, amps), oldest first: a grid
    reading taken before ``until`` may still carry the car's draw at ``amps``. Kept only as
    long as a sample that old is still valid (``meter_lost_after``)."""
    cut_at: float = 0.0
    limit_a: float | None = None
    """Decided by the last round (None: not yet)."""
    reason: str = "new"
    over_since: float | None = None
    ignoring: bool = False
    cloud_tx: bool = False
    forced: bool = False
    pause_decided_at: float | None = None
    """When a round paused it while it ran (its pause counts from the decision, not the ack)."""

    def highest_earlier_offer(self, at: float) -> float | None:
        """The highest limit in force at some moment after ``at`` before the current one
        (None: none, the current one was already in force at ``at``)."""
        return max((amps for until, amps in self.earlier_offers if until > at), default=None)

    def lowest_earlier_offer(self, at: float) -> float | None:
        """The lowest limit in force at some moment after ``at`` before the current one (None:
        none): a reading taken at ``at`` may show the car at it, before a raise took effect."""
        return min((amps for until, amps in self.earlier_offers if until > at), default=None)

    @property
    def tx_number(self) -> int | None:
        """The transaction id as OCPP 1.6's integer, for what is built with it (a TxProfile's
        transactionId, the cloud's TxProfiles, the state view); None: none, or not an integer
        (an OCPP 2.0.1 string id)."""
        tx = self.transaction_id
        if tx is None:
            return None
        try:
            return int(tx)
        except ValueError:
            return None


@dataclass(slots=True)
class ChargerRecord:
    id: str
    config: ChargerConfig
    model: ChargerModel
    wiring: tuple[Phase, ...]
    connected: bool = False
    connectors: set[int] = field(default_factory=set)
    statuses: dict[int, str] = field(default_factory=dict)
    """Each connector's last status (``edgegw.ocpp.lifecycle`` decides what it means)."""
    sessions: dict[int, SessionRecord] = field(default_factory=dict)
    desired: dict[ProfileKey, ProfileCommand] = field(default_factory=dict)
    acked: dict[ProfileKey, ProfileCommand] = field(default_factory=dict)
    stale: set[ProfileKey] = field(default_factory=set)
    failures: int = 0
    last_error: str | None = None
    flags: set[Flag] = field(default_factory=set)
    cloud: dict[int, CloudProfile] = field(default_factory=dict)
    """Cloud profiles the charger accepted, by chargingProfileId."""
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

    def offered(self, connector: int) -> float:
        """The limit in force on ``connector`` (see :func:`edgegw.energy.inforce.offered_a`)."""
        session = self.sessions.get(connector)
        return offered_a(
            self.acked,
            connector,
            session=session is not None,
            transaction_id=None if session is None else session.tx_number,
            unlimited_a=self.config.max_current_a,
        )

    def safe_limit(self) -> float:
        """What the whole charger may draw per phase when nothing else is known."""
        fallback = self.config.fallback_current_a
        if self.max_override is not None:
            fallback = min(fallback, self.max_override)
        return iec_limit(self.model, fallback, self.min_a)

    def site_currents(self, charger_currents: Iterable[float]) -> PerPhase:
        """Currents per charger phase (L1, L2...) as currents per site phase (its wiring)."""
        site = [0.0, 0.0, 0.0]
        for index, amps in enumerate(charger_currents):
            if index < len(self.wiring):
                site[self.wiring[index]] += amps
        return (site[0], site[1], site[2])


@dataclass(slots=True)
class MeterView:
    """What the rounds know of the site meter."""

    state: str = "waiting"
    """'ok', 'lost' or 'waiting' (no sample yet)."""
    hold: bool = False
    """The meter's last read failed: its last valid sample is used for cuts, never raises."""
    age_s: float | None = None
    last_grid: PerPhase | None = None
    held_non_ev: HeldEstimate = NO_ESTIMATE


@dataclass(slots=True)
class BoardView:
    """What the rounds know of one board's meter (a circuit with ``meter``)."""

    state: str = "waiting"
    """'ok', 'lost' (its chargers share its fallback budget) or 'waiting' (no sample yet:
    counted as lost)."""
    hold: bool = False
    """Its meter's last read failed: no session under the board is raised until it reads."""
    age_s: float | None = None
    measured_a: PerPhase | None = None
    """Its last valid, fresh reading per site phase (None while lost)."""
    other_a: PerPhase | None = None
    """The load under it the last round counted besides the sessions it decided: its non-EV
    load (measured or estimated), or while lost the worst case its configuration allows."""
    held_non_ev: HeldEstimate = NO_ESTIMATE
