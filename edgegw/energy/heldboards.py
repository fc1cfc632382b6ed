"""Boards that the load held outside the allocator can fill on its own.

The planner counts some sessions at a fixed limit under their board (``edgegw.energy.planner``):
a charger the gateway cannot limit at its ``max_current_a``, one that cannot pause at its
minimum. Their sum is not something the allocator can cut: when it exceeds a board's
``limit_a - margin_a`` the board may trip with one car on each of them, whatever the others do.
The configuration alone cannot tell (the charger models say who cannot be limited or paused),
so the site model checks it once it knows the models, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from edgegw.config import CircuitConfig, SiteConfig
from edgegw.energy.siterecords import ChargerRecord


def _chain(name: str, parents: dict[str, str | None]) -> list[str]:
    """``name`` and every board above it (the configuration refuses cycles)."""
    chain: list[str] = []
    current: str | None = name
    while current is not None and current in parents and current not in chain:
        chain.append(current)
        current = parents[current]
    return chain


def held_over_boards(
    circuits: Sequence[CircuitConfig], site: SiteConfig, chargers: Iterable[ChargerRecord]
) -> list[str]:
    """One line per board whose held load (one session on each charger that cannot be limited
    or cannot pause) exceeds its ``limit_a - margin_a`` on some phase."""
    parents = {c.name: c.parent for c in circuits}
    held = {c.name: [0.0, 0.0, 0.0] for c in circuits}
    who: dict[str, list[str]] = {c.name: [] for c in circuits}
    for ch in chargers:
        if ch.config.circuit is None or ch.retired:
            continue
        if ch.model.cap_purpose is None:
            amps, why = ch.config.max_current_a, "cannot be limited"
        elif not ch.model.can_pause:
            amps, why = ch.min_a, "cannot pause"
        else:
            continue
        for name in _chain(ch.config.circuit, parents):
            who[name].append(f"{ch.id} ({why}: {amps:g} A)")
            for p in ch.site_phases:
                held[name][p] += amps
    problems: list[str] = []
    for circuit in circuits:
        room = [limit - circuit.margin(site) for limit in circuit.limits()]
        over = [i for i in range(3) if held[circuit.name][i] > room[i]]
        if over:
            i = over[0]
            problems.append(
                f"circuit {circuit.name!r}: the chargers under it that the gateway cannot limit "
                f"or pause hold {held[circuit.name][i]:g} A on L{i + 1}, above its limit_a - "
                f"margin_a ({room[i]:g} A): with a car on each its fuse could trip whatever "
                f"the others do ({', '.join(who[circuit.name])})"
            )
    return problems
