"""The circuit tree as the live snapshot shows it: each board's limit, what load capping
allocated under it and the headroom left, what its chargers measure, its own meter if any.

The limits are the controller's in force (the configured ones, lowered from outside when they
are; the configuration's before the first round), the allocation from the load controller's
last round (:class:`~edgegw.energy.controlstate.CircuitState`), the load from the chargers'
own readings (the live state's, on the site phases each charger is wired to, every charger
below the board counted, sub-boards' included).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgegw.config import Config
from edgegw.live.chargers import on_site_phases, sum_phases
from edgegw.live.snapshot import ChargerLive, CircuitLive, Phases

if TYPE_CHECKING:
    from edgegw.energy.controlstate import ControllerState

Wiring = Callable[[str], tuple[int, ...]]
"""A charger's id -> the site phases its L1, L2, L3 are wired to."""


def chains(parents: Mapping[str, str | None]) -> dict[str, tuple[str, ...]]:
    """Each circuit -> itself and the circuits above it, nearest first (a cycle or an unknown
    parent, which the configuration check refuses, ends the chain there)."""
    out: dict[str, tuple[str, ...]] = {}
    for name in parents:
        chain = [name]
        parent = parents[name]
        while parent is not None and parent in parents and parent not in chain:
            chain.append(parent)
            parent = parents[parent]
        out[name] = tuple(chain)
    return out


def _phases3(value: Any) -> tuple[float, float, float] | None:
    """A controller per-phase value as three floats (None when it is not one)."""
    if isinstance(value, tuple | list) and len(value) == 3:
        a, b, c = value
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b, c)):
            return (float(a), float(b), float(c))
    return None


def _margin(config: Config, name: str) -> float:
    circuit = next(c for c in config.circuits if c.name == name)
    if config.site is not None:
        return circuit.margin(config.site)
    return circuit.margin_a or 0.0


def circuits_live(
    config: Config,
    cstate: ControllerState | None,
    chargers: Sequence[ChargerLive],
    wiring: Wiring,
) -> tuple[CircuitLive, ...]:
    """Every configured circuit, in configuration order."""
    circuits = config.circuits
    if not circuits:
        return ()
    states = {} if cstate is None else {c.name: c for c in cstate.circuits}
    tree = chains({c.name: c.parent for c in circuits})
    hung: dict[str, list[str]] = {c.name: [] for c in circuits}
    for ch in config.chargers:
        if ch.circuit is not None and ch.circuit in hung:
            hung[ch.circuit].append(ch.id)
    loads: dict[str, list[Phases | None]] = {c.name: [] for c in circuits}
    circuit_of = {ch.id: ch.circuit for ch in config.chargers}
    for charger in chargers:
        board = circuit_of.get(charger.id)
        if board is None or board not in tree or not charger.connected:
            continue
        on_site = on_site_phases(charger.current_a, wiring(charger.id))
        for name in tree[board]:
            loads[name].append(on_site)
    out = []
    for c in circuits:
        state = states.get(c.name)
        out.append(
            CircuitLive(
                name=c.name,
                parent=c.parent,
                limit_a=c.limits() if state is None else state.limit_a,
                margin_a=state.margin_a if state is not None else _margin(config, c.name),
                allocated_a=None if state is None else _phases3(state.used_a),
                headroom_a=None if state is None else _phases3(state.headroom_a),
                load_a=sum_phases(loads[c.name]),
                measured_a=None if state is None else _phases3(state.measured_a),
                chargers=tuple(hung[c.name]),
                meter=None if state is None else state.meter,
                fallback=state is not None and state.fallback,
                other_a=None if state is None else _phases3(state.other_a),
                meter_hold=state is not None and state.meter_hold,
                meter_age_s=None if state is None else state.meter_age_s,
            )
        )
    return tuple(out)
