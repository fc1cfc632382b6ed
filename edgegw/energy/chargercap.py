"""§14a EnWG: a grid operator's dimming caps what the controllable chargers under a circuit
draw, not the circuit itself.

An ``[[limits]]`` source with ``para14a = true`` lowers its circuit to P_min,14a per phase
(:func:`edgegw.energy.external.grant_for`). Taken as a plain circuit limit, the circuit's
margin and its board's other load would come off it and the chargers would keep less than the
regulation's minimum (often nothing: 6.09 A less a 2 A margin is below a car's 6 A). So each
round :func:`capped_for_chargers` turns it into the limit that leaves the chargers exactly the
grant: ``grant + margin + the board's other load`` per phase (the other load is not a
controllable charger: the grant is for the chargers; it is the metered boards' non-EV load at
or under the circuit), never above the circuit's limit without the dimming (its fuse, and any
other source's lowering, still hold with their margin).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from edgegw.energy.allocator import Circuit, PerPhase, Phase
from edgegw.energy.boardload import BoardLoad
from edgegw.energy.sitemodel import SiteModel


def capped_for_chargers(
    model: SiteModel, circuits: tuple[Circuit, ...], boards: Mapping[str, BoardLoad]
) -> tuple[Circuit, ...]:
    """``circuits`` (the allocator's, limits from :meth:`SiteModel.circuit_limits`) with each
    §14a-dimmed circuit's limit set as the module says."""
    sources = {limit.name for limit in model.config.limits if limit.para14a}
    if not sources or not circuits:
        return circuits
    configured = {c.name: c for c in model.config.circuits}
    children: dict[str, list[str]] = {}
    for c in model.config.circuits:
        if c.parent is not None:
            children.setdefault(c.parent, []).append(c.name)

    def other_load(name: str) -> list[float]:
        board = boards.get(name)
        if board is not None:
            return list(board.other_a)
        total = [0.0, 0.0, 0.0]
        for child in children.get(name, ()):
            below = other_load(child)
            total = [total[p] + below[p] for p in Phase]
        return total

    out: list[Circuit] = []
    for circuit in circuits:
        grant = model.node_limits.lowest(circuit.name, sources)
        config = configured.get(circuit.name)
        if grant is None or config is None:
            out.append(circuit)
            continue
        undimmed = model.node_limits.lowered(config.limits(), circuit.name, skip=sources)
        other = other_load(circuit.name)
        limit: PerPhase = (
            min(undimmed[0], grant[0] + circuit.margin_a + other[0]),
            min(undimmed[1], grant[1] + circuit.margin_a + other[1]),
            min(undimmed[2], grant[2] + circuit.margin_a + other[2]),
        )
        out.append(replace(circuit, limit_a=limit))
    return tuple(out)
