"""What the load-capping allocator takes and gives: the site, its sessions, the parameters,
and the allocation (frozen, validated dataclasses). :mod:`edgegw.energy.allocator` holds the
algorithm and the rules it keeps; every name here is importable from there too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum


class AllocatorInputError(ValueError):
    """The site state or the parameters are inconsistent; the message names the field."""


class Phase(IntEnum):
    """A site phase. The value is the index into every per-phase tuple."""

    L1 = 0
    L2 = 1
    L3 = 2

    def __str__(self) -> str:
        return self.name


ALL_PHASES: frozenset[Phase] = frozenset(Phase)

PerPhase = tuple[float, float, float]
"""Amperes per site phase, indexed by :class:`Phase` (L1, L2, L3)."""


class Priority(StrEnum):
    NORMAL = "normal"
    VIP = "vip"


class Mode(StrEnum):
    """Which budget the round used."""

    NORMAL = "normal"
    """Meter reading valid: budget = limit - margin - non-EV load."""
    FALLBACK = "fallback"
    """No trustworthy non-EV load: the EVs share ``Site.fallback_ev_a``."""
    OVERLOAD = "overload"
    """The non-EV load alone exceeds a phase limit: everything paused."""


class Reason(StrEnum):
    """Why a session got its limit. The value goes into the decision log as is."""

    FAIR_SHARE = "fair_share"
    """Limited by its share of a phase budget."""
    AT_MAX = "at_max"
    """Got its maximum current."""
    AT_FALLBACK = "at_fallback"
    """Fallback mode: got its configured fallback current."""
    RECLAIMED = "reclaimed"
    """Draws clearly less than offered: offered its draw plus headroom."""
    RAMPING = "ramping"
    """Raise limited to the ramp rate."""
    WAITING_FOR_CUTS = "waiting_for_cuts"
    """Raise or start held back until other sessions' cuts are in force."""
    PAUSED_NO_CAPACITY = "paused_no_capacity"
    """Paused: its minimum does not fit next to the sessions ahead of it."""
    PAUSED_QUEUED = "paused_queued"
    """Paused although its minimum would fit: a session ahead in the queue needs these phases."""
    PAUSED_HOLD = "paused_hold"
    """Paused recently; stays paused until ``min_pause_s`` is over."""
    PAUSED_BELOW_MINIMUM = "paused_below_minimum"
    """Its cap (max, or fallback current in fallback mode) is below its minimum."""
    PAUSED_SITE_OVERLOAD = "paused_site_overload"
    """The non-EV load alone exceeds the site limit on some phase."""
    METER_HOLD = "meter_hold"
    """Set by the controller, not the allocator: the meter's last read failed, so the
    session keeps its limit in force (a raise or start waits for the next valid reading)."""


SELF_CAPPED = frozenset({Reason.AT_MAX, Reason.AT_FALLBACK, Reason.RECLAIMED, Reason.RAMPING})
"""Reasons that mean "held back by its own limit, not by other sessions"."""


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise AllocatorInputError(f"{name} must be a finite number, got {value!r}")


def _per_phase(name: str, values: Sequence[float], *, minimum: float | None = None) -> None:
    if len(values) != len(Phase):
        raise AllocatorInputError(f"{name} needs one value per phase (L1, L2, L3), got {values!r}")
    for phase, value in zip(Phase, values, strict=True):
        _finite(f"{name}[{phase}]", value)
        if minimum is not None and value < minimum:
            raise AllocatorInputError(f"{name}[{phase}] must be >= {minimum}, got {value}")


def _phase_set(name: str, phases: Iterable[int]) -> frozenset[Phase]:
    try:
        result = frozenset(Phase(p) for p in phases)
    except ValueError as exc:
        raise AllocatorInputError(f"{name} may only hold Phase.L1/L2/L3 (0..2): {exc}") from None
    if not result:
        raise AllocatorInputError(f"{name} must name at least one phase")
    return result


@dataclass(frozen=True)
class Site:
    """The connection the chargers share.

    ``fallback_ev_a`` is what all chargers together may draw per phase while the non-EV load is
    unknown (meter lost, or not read yet). Size it as limit - margin - the building's worst-case
    load. Left unset, there is no safe budget to assume and fallback mode pauses every session,
    as SmartEVSE does on meter loss. It is never allowed above ``limit - margin``.
    """

    limit_a: PerPhase
    margin_a: float = 0.0
    fallback_ev_a: PerPhase | None = None

    def __post_init__(self) -> None:
        _per_phase("Site.limit_a", self.limit_a, minimum=0.0)
        _finite("Site.margin_a", self.margin_a)
        if self.margin_a < 0:
            raise AllocatorInputError(f"Site.margin_a must be >= 0, got {self.margin_a}")
        if self.margin_a >= min(self.limit_a):
            raise AllocatorInputError(
                f"Site.margin_a ({self.margin_a} A) must be smaller than every phase limit "
                f"{self.limit_a!r}"
            )
        if self.fallback_ev_a is not None:
            _per_phase("Site.fallback_ev_a", self.fallback_ev_a, minimum=0.0)


@dataclass(frozen=True)
class Circuit:
    """A distribution board (or any fused branch) between the site and some chargers.

    ``parent`` is another circuit's name (``None``: directly under the site). Every session
    whose ``circuit`` is this one or one below it counts against ``limit_a - margin_a`` on
    each phase, plus ``fixed_a``: the load there that the allocator does not decide (a
    charger that cannot pause, one that ignores its limit..., and the board's other loads when
    it has a meter; the caller sees that a board's ``fixed_a`` and its sub-boards' together
    cover what is under it). ``fallback``: its meter is lost, so each session under it is
    capped at its ``fallback_a`` as in the site's fallback mode (its ``fixed_a`` then carries
    the worst-case other load the configuration allows).
    """

    name: str
    limit_a: PerPhase
    margin_a: float = 0.0
    parent: str | None = None
    fixed_a: PerPhase = (0.0, 0.0, 0.0)
    fallback: bool = False

    def __post_init__(self) -> None:
        label = f"Circuit {self.name!r}"
        if not self.name:
            raise AllocatorInputError("Circuit.name must not be empty")
        _per_phase(f"{label}.limit_a", self.limit_a, minimum=0.0)
        _per_phase(f"{label}.fixed_a", self.fixed_a, minimum=0.0)
        _finite(f"{label}.margin_a", self.margin_a)
        if self.margin_a < 0:
            raise AllocatorInputError(f"{label}.margin_a must be >= 0, got {self.margin_a}")
        if self.parent == self.name:
            raise AllocatorInputError(f"{label}.parent is the circuit itself")


def circuit_chains(circuits: Sequence[Circuit]) -> dict[str, tuple[str, ...]]:
    """Each circuit's name -> itself and its ancestors, nearest first (the site not included).

    Raises :class:`AllocatorInputError` on a duplicate name, an unknown parent or a cycle.
    """
    by_name: dict[str, Circuit] = {}
    for circuit in circuits:
        if circuit.name in by_name:
            raise AllocatorInputError(f"circuit {circuit.name!r} appears twice")
        by_name[circuit.name] = circuit
    chains: dict[str, tuple[str, ...]] = {}
    for circuit in circuits:
        chain = [circuit.name]
        parent = circuit.parent
        while parent is not None:
            if parent not in by_name:
                raise AllocatorInputError(
                    f"circuit {chain[-1]!r}: parent {parent!r} is not a circuit"
                )
            if parent in chain:
                raise AllocatorInputError("circuits form a cycle: " + " -> ".join([*chain, parent]))
            chain.append(parent)
            parent = by_name[parent].parent
        chains[circuit.name] = tuple(chain)
    return chains


@dataclass(frozen=True)
class Session:
    """One car on one connector, as the controller knows it this round.

    Phases are *site* phases, after the charger's phase rotation (see :func:`map_phases`):
    ``charger_phases`` are the site phases the charger is wired to, ``car_phases`` the ones the
    car actually draws on, or ``None`` while unknown (then all of the charger's phases count).
    ``measured_a`` is the car's current per site phase (``None`` before any MeterValues).

    ``offered_a`` is the limit in force at the charger now (0 = paused). For a session the
    gateway has not limited yet, pass whatever the charger would allow on its own (its default
    profile or its maximum): raises are counted from it. ``started_at``/``paused_at`` (monotonic
    seconds, same clock as ``SiteState.now``) are when current was last switched on / off;
    copy them from the :class:`Allocation` once the charger applied it (:meth:`applied`).
    ``arrived_at`` is when the session began; it orders the queue until the first pause.
    """

    charger_id: str
    connector: int
    priority: Priority = Priority.NORMAL
    min_a: float = 6.0
    max_a: float = 16.0
    fallback_a: float | None = None
    """Current in fallback mode; ``None`` = its minimum."""
    charger_phases: frozenset[Phase] = ALL_PHASES
    car_phases: frozenset[Phase] | None = None
    measured_a: PerPhase | None = None
    offered_a: float = 0.0
    arrived_at: float = 0.0
    started_at: float | None = None
    paused_at: float | None = None
    circuit: str | None = None
    """The circuit its charger hangs on (``None``: directly under the site)."""

    def __post_init__(self) -> None:
        label = f"Session {self.charger_id!r}/{self.connector}"
        if self.connector < 0:
            raise AllocatorInputError(f"{label}: connector must be >= 0")
        for name in ("min_a", "max_a", "offered_a", "arrived_at"):
            _finite(f"{label}.{name}", getattr(self, name))
        if self.min_a <= 0:
            raise AllocatorInputError(f"{label}: min_a must be > 0, got {self.min_a}")
        if self.max_a < self.min_a:
            raise AllocatorInputError(
                f"{label}: max_a ({self.max_a}) must be >= min_a ({self.min_a})"
            )
        if self.fallback_a is not None:
            _finite(f"{label}.fallback_a", self.fallback_a)
            if self.fallback_a < 0:
                raise AllocatorInputError(f"{label}: fallback_a must be >= 0")
        if self.offered_a < 0:
            raise AllocatorInputError(f"{label}: offered_a must be >= 0, got {self.offered_a}")
        for name in ("started_at", "paused_at"):
            value = getattr(self, name)
            if value is not None:
                _finite(f"{label}.{name}", value)
        object.__setattr__(
            self, "charger_phases", _phase_set(f"{label}.charger_phases", self.charger_phases)
        )
        if self.car_phases is not None:
            car = _phase_set(f"{label}.car_phases", self.car_phases)
            if not car <= self.charger_phases:
                raise AllocatorInputError(
                    f"{label}: car_phases {sorted(map(str, car))} must be among the charger's "
                    f"phases {sorted(map(str, self.charger_phases))}"
                )
            object.__setattr__(self, "car_phases", car)
        if self.measured_a is not None:
            _per_phase(f"{label}.measured_a", self.measured_a)

    @property
    def key(self) -> tuple[str, int]:
        return (self.charger_id, self.connector)

    @property
    def label(self) -> str:
        return f"{self.charger_id}/{self.connector}"

    @property
    def phases(self) -> frozenset[Phase]:
        """The site phases this session is counted on."""
        return self.car_phases if self.car_phases is not None else self.charger_phases

    def applied(self, allocation: Allocation) -> Session:
        """This session once its charger has applied ``allocation`` (input for the next round)."""
        if allocation.key != self.key:
            raise AllocatorInputError(
                f"allocation for {allocation.label} applied to session {self.label}"
            )
        return replace(
            self,
            offered_a=allocation.limit_a,
            started_at=allocation.started_at,
            paused_at=allocation.paused_at,
        )


@dataclass(frozen=True)
class AllocatorParams:
    """Tuning. Defaults follow what the field uses (spec-facts §6)."""

    ramp_a_per_s: float = 1.0
    """Raise rate; cuts are never ramped."""
    min_run_s: float = 900.0
    """A started session is not paused *for rotation* before this (OpenEMS: 900 s slots)."""
    min_pause_s: float = 120.0
    """A paused session is not restarted before this, whatever frees up."""
    reclaim_after_s: float = 60.0
    """Reclaim only from sessions that have been running this long (cars ramp up slowly)."""
    reclaim_threshold_a: float = 2.0
    """Draw this far below the offer counts as "clearly less"."""
    reclaim_headroom_a: float = 3.0
    """A reclaimed session is offered its draw plus this; above the threshold, so it is stable."""

    def __post_init__(self) -> None:
        for name in (
            "ramp_a_per_s",
            "min_run_s",
            "min_pause_s",
            "reclaim_after_s",
            "reclaim_threshold_a",
            "reclaim_headroom_a",
        ):
            value = getattr(self, name)
            _finite(f"AllocatorParams.{name}", value)
            if value < 0:
                raise AllocatorInputError(f"AllocatorParams.{name} must be >= 0, got {value}")
        if self.ramp_a_per_s <= 0:
            raise AllocatorInputError("AllocatorParams.ramp_a_per_s must be > 0")
        if self.reclaim_headroom_a <= self.reclaim_threshold_a:
            raise AllocatorInputError(
                "AllocatorParams.reclaim_headroom_a must be larger than reclaim_threshold_a, "
                "or a reclaimed session would be raised and reclaimed again every round"
            )


@dataclass(frozen=True)
class SiteState:
    """Everything one round decides on.

    ``non_ev_a`` is the load that is not ours, per phase: grid minus measured EV draw when the
    grid meter includes the chargers (:func:`non_ev_from_grid`), or the reading of a meter of
    the non-EV load. ``None`` means no trustworthy reading (meter lost or not read yet): the
    round runs in fallback mode. Negative values (export) are treated as 0: the chargers'
    feeder cannot count on generation that may stop at any moment.
    """

    site: Site
    non_ev_a: PerPhase | None
    sessions: tuple[Session, ...]
    now: float
    dt_s: float
    """Seconds since the previous round: the ramp allowance is ``ramp_a_per_s * dt_s``."""
    circuits: tuple[Circuit, ...] = ()
    """The circuits below the site (none: every session hangs directly on the site)."""

    def __post_init__(self) -> None:
        if self.non_ev_a is not None:
            _per_phase("SiteState.non_ev_a", self.non_ev_a)
        chains = circuit_chains(self.circuits)
        for session in self.sessions:
            if session.circuit is not None and session.circuit not in chains:
                raise AllocatorInputError(
                    f"session {session.label}: circuit {session.circuit!r} is not a circuit"
                )
        _finite("SiteState.now", self.now)
        _finite("SiteState.dt_s", self.dt_s)
        if self.dt_s < 0:
            raise AllocatorInputError(f"SiteState.dt_s must be >= 0, got {self.dt_s}")
        seen: set[tuple[str, int]] = set()
        for session in self.sessions:
            if session.key in seen:
                raise AllocatorInputError(f"session {session.label} appears twice")
            seen.add(session.key)


@dataclass(frozen=True)
class Allocation:
    """The decision for one session. ``started_at``/``paused_at`` are the updated timestamps."""

    charger_id: str
    connector: int
    limit_a: float
    reason: Reason
    phases: frozenset[Phase]
    started_at: float | None
    paused_at: float | None

    @property
    def key(self) -> tuple[str, int]:
        return (self.charger_id, self.connector)

    @property
    def label(self) -> str:
        return f"{self.charger_id}/{self.connector}"


@dataclass(frozen=True)
class CircuitUse:
    """One circuit after a round: its limit and what is allocated under it, per phase."""

    name: str
    parent: str | None
    limit_a: PerPhase
    margin_a: float
    used_a: PerPhase
    """Sum of the limits of the sessions under it (sub-circuits included), plus its fixed
    load and its sub-circuits'."""


@dataclass(frozen=True)
class AllocationResult:
    """One round's decisions, in the order the sessions came in, with per-phase figures."""

    mode: Mode
    allocations: tuple[Allocation, ...]
    budget_a: PerPhase
    """What the EVs may use per phase this round."""
    used_a: PerPhase
    """Sum of the limits per phase."""
    headroom_a: PerPhase
    """budget - used."""
    notes: tuple[str, ...] = field(default=())
    """Human-readable lines for the decision log."""
    circuits: tuple[CircuitUse, ...] = field(default=())
    """Per circuit, in the order of ``SiteState.circuits``."""

    def get(self, charger_id: str, connector: int) -> Allocation:
        for allocation in self.allocations:
            if allocation.key == (charger_id, connector):
                return allocation
        raise KeyError(f"no allocation for {charger_id}/{connector}")


def map_phases(wiring: Sequence[Phase], charger_phases: Iterable[Phase]) -> frozenset[Phase]:
    """Translate the charger's own phases into site phases.

    ``wiring[i]`` is the site phase the charger's phase ``i`` is connected to (OCPP
    ``ConnectorPhaseRotation``); e.g. a charger wired L2/L3/L1 has ``wiring = (L2, L3, L1)``
    and a single-phase car, which draws on the charger's L1, loads site L2.
    """
    if sorted(wiring) != list(Phase):
        raise AllocatorInputError(f"wiring must name each site phase once, got {wiring!r}")
    return frozenset(wiring[p] for p in charger_phases)


def non_ev_from_grid(grid_a: PerPhase, sessions: Iterable[Session]) -> PerPhase:
    """Non-EV load from a grid meter that also measures the chargers: grid - measured EV draw.

    Sessions without a measurement subtract nothing, which overestimates the non-EV load: safe.
    Clamped at 0 per phase.
    """
    _per_phase("grid_a", grid_a)
    load = [grid_a[p] for p in Phase]
    for session in sessions:
        if session.measured_a is not None:
            for p in Phase:
                load[p] -= session.measured_a[p]
    return (max(0.0, load[0]), max(0.0, load[1]), max(0.0, load[2]))
