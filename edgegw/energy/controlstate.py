"""What the load controller shows: its state snapshot, each round's load, its decision log rows.

Pure views of the :class:`~edgegw.energy.sitemodel.SiteModel` and a
:class:`~edgegw.energy.planner.RoundPlan`, for the control socket, the TUI, MQTT, the per-minute
load history and the decision log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from edgegw.energy.allocator import AllocationResult, PerPhase, Session
from edgegw.energy.planner import RoundPlan
from edgegw.energy.sitemodel import SiteModel
from edgegw.energy.siterecords import Flag


class DecisionSink(Protocol):
    """Where each round's inputs and outputs go (``edgegw.store.decisions.DecisionLog``)."""

    def record(
        self, at: float, mode: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None: ...


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
class CircuitState:
    """One circuit (distribution board) below the site."""

    name: str
    parent: str | None
    """The circuit it hangs on (None: the site)."""
    limit_a: PerPhase
    """In force: the limit the last round used (before the first round: the configured limit,
    lowered from outside if it is). While §14a dims the circuit, that is the grant plus the
    margin and the board's other load (the grant caps the chargers, not the board)."""
    margin_a: float
    used_a: PerPhase | None
    """What the last round counted under it: the sessions' limits, held sessions, sub-circuits
    and, with a meter, the board's other load (``other_a``); None before the first round."""
    headroom_a: PerPhase | None
    """limit - margin - used."""
    meter: str | None = None
    """Its meter: 'ok', 'lost' (the board is in fallback) or 'waiting'; None: no meter."""
    meter_hold: bool = False
    """Its meter's last read failed: no charger under it is raised until it reads again."""
    meter_age_s: float | None = None
    measured_a: PerPhase | None = None
    """Its meter's last fresh reading (None: no meter, or lost)."""
    other_a: PerPhase | None = None
    """The load under it besides the chargers, as the last round counted it: measured or
    estimated, or while its meter is lost the worst case its configuration allows."""
    fallback: bool = False
    """Its meter is lost: its chargers share its ``fallback_ev_a`` (none: paused)."""


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
    circuits: tuple[CircuitState, ...] = ()
    """In configuration order; none: every charger hangs directly on the site."""

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


def snapshot(model: SiteModel, limits: PerPhase) -> ControllerState:
    """The controller's state for the control socket, the TUI and MQTT."""
    result = model.last_result
    chargers = []
    for ch in sorted(model.chargers.values(), key=lambda c: c.id):
        sessions = tuple(
            SessionState(
                connector=s.connector,
                transaction_id=s.tx_number,
                status=s.status,
                limit_a=s.limit_a,
                offered_a=ch.offered(s.connector),
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
                cap_purpose=None if ch.model.cap_purpose is None else ch.model.cap_purpose.value,
                flags=tuple(sorted(f.value for f in ch.flags)),
                last_error=ch.last_error,
                pending_profiles=len(ch.pending()) if ch.connected else 0,
                sessions=sessions,
                max_current_a=ch.max_a,
                max_override_a=ch.max_override,
            )
        )
    meter = model.meter
    return ControllerState(
        mode="idle" if result is None else result.mode.value,
        meter=meter.state,
        meter_age_s=meter.age_s,
        limit_a=limits,
        margin_a=model.site.margin_a,
        grid_a=meter.last_grid if meter.state == "ok" else None,
        non_ev_a=model.last_non_ev,
        budget_a=None if result is None else result.budget_a,
        used_a=None if result is None else result.used_a,
        headroom_a=None if result is None else result.headroom_a,
        chargers=tuple(chargers),
        circuits=circuit_states(model),
    )


def circuit_states(model: SiteModel) -> tuple[CircuitState, ...]:
    """The configured circuits, with what the last round allocated under each."""
    result = model.last_result
    uses = {} if result is None else {c.name: c for c in result.circuits}
    states = []
    for c in model.config.circuits:
        use = uses.get(c.name)
        # The limit the round used: a §14a grant raised by the margin and the board's other
        # load (energy.chargercap), so the headroom is what the round left.
        limit = model.circuit_limits(c) if use is None else use.limit_a
        margin = c.margin(model.site)
        used_a = None if use is None else use.used_a
        board = model.boards.get(c.name) if c.meter is not None else None
        states.append(
            CircuitState(
                name=c.name,
                parent=c.parent,
                limit_a=limit,
                margin_a=margin,
                used_a=used_a,
                meter=None if c.meter is None else "waiting" if board is None else board.state,
                meter_hold=board is not None and board.hold,
                meter_age_s=None if board is None else board.age_s,
                measured_a=None if board is None else board.measured_a,
                other_a=None if board is None else board.other_a,
                fallback=board is not None and board.state != "ok",
                headroom_a=None
                if used_a is None
                else (
                    limit[0] - margin - used_a[0],
                    limit[1] - margin - used_a[1],
                    limit[2] - margin - used_a[2],
                ),
            )
        )
    return tuple(states)


def decision_inputs(model: SiteModel, plan: RoundPlan) -> dict[str, Any]:
    """What a round decided from, for the decision log."""

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
            "circuit": s.circuit,
        }

    return {
        "grid_a": plan.grid_a,
        "meter_age_s": model.meter.age_s,
        "meter_hold": model.meter.hold,
        "meter_role": model.site.meter_role,
        "non_ev_a": plan.non_ev_a,
        "sessions": [session_row(s) for _, _, s in plan.eligible],
        "circuits": [
            {
                "name": c.name,
                "parent": c.parent,
                "limit_a": c.limit_a,
                "margin_a": c.margin_a,
                "held_a": c.fixed_a,
                "fallback": c.fallback,
                **_board_inputs(model, c.name),
            }
            for c in plan.circuits
        ],
        "held": [
            {"charger": ch.id, "connector": se.connector, "limit_a": s.min_a, "why": "cannot_pause"}
            for ch, se, s in plan.forced
        ]
        + [
            {"charger": ch.id, "connector": se.connector, "limit_a": amps, "why": why}
            for ch, se, amps, why in plan.pinned
        ],
    }


def _board_inputs(model: SiteModel, name: str) -> dict[str, Any]:
    """A metered board's meter in a decision-log row (nothing for a board without one)."""
    board = model.boards.get(name)
    if board is None:
        return {}
    return {
        "meter": board.state,
        "meter_hold": board.hold,
        "meter_age_s": board.age_s,
        "measured_a": board.measured_a,
        "other_a": board.other_a,
    }


def decision_outputs(model: SiteModel, result: AllocationResult) -> dict[str, Any]:
    """What a round decided, and the profiles still on their way, for the decision log."""
    return {
        "budget_a": result.budget_a,
        "used_a": result.used_a,
        "headroom_a": result.headroom_a,
        "circuits": [{"name": c.name, "used_a": c.used_a} for c in result.circuits],
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
            for ch in model.chargers.values()
            if ch.connected and ch.pending()
        },
    }
