"""The circuit tree of the Energy page: the site, its boards, the chargers on each.

One row per node, indented by its depth: its limit per phase, what the last load-capping
round allocated under it, the load measured now (a board with its own meter shows the
meter's reading, else what its chargers report) and the headroom left (limit - margin -
allocated), with the tightest phase's headroom first so a full board reads at a glance.
Pure: :func:`tree_rows` turns a snapshot into table rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from edgegw.live.snapshot import ChargerLive, CircuitLive, LiveSnapshot, Phases

COLUMNS: Final = (
    ("Node", "node"),
    ("Limit A", "limit"),
    ("Allocated A", "allocated"),
    ("Load A", "load"),
    ("Headroom A", "headroom"),
)
INDENT: Final = "  "
SITE_KEY: Final = "site"

Row = tuple[str, list[str]]


def per_phase(values: Phases | Sequence[float] | None) -> str:
    """``16/16/10`` (``-`` for an unknown phase), or ``-`` when nothing is known."""
    if values is None or all(v is None for v in values):
        return "-"
    return "/".join("-" if v is None else f"{v:.0f}" for v in values)


def headroom(values: Phases | Sequence[float] | None) -> str:
    """The tightest phase first (``min 0`` marks a full board), then each phase."""
    if values is None:
        return "-"
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    return f"min {min(known):.0f} ({per_phase(values)})"


def _board_load(circuit: CircuitLive) -> str:
    if circuit.fallback:
        return "meter lost: fallback"
    if circuit.measured_a is not None:
        return f"{per_phase(circuit.measured_a)} meter"
    return per_phase(circuit.load_a)


def _charger_row(charger: ChargerLive, depth: int) -> Row:
    limits = [c.limit_a for c in charger.connectors if c.limit_a is not None]
    version = "" if charger.ocpp_version is None else f" [{charger.version_label}]"
    return (
        f"charger:{charger.id}",
        [
            f"{INDENT * depth}{charger.name}{version}",
            "-",
            "-" if not limits else f"{sum(limits):.0f}",
            per_phase(charger.current_a) if charger.connected else "offline",
            "",
        ],
    )


def tree_rows(snapshot: LiveSnapshot) -> list[Row]:
    """The site, then each board below its parent (configuration order among siblings), each
    followed by the chargers hung directly on it; chargers on the site itself come last."""
    site = snapshot.site
    rows: list[Row] = [
        (
            SITE_KEY,
            [
                "Site",
                per_phase(site.limit_a),
                per_phase(site.allocated_a),
                per_phase(site.current_a) + (" meter" if site.current_a is not None else ""),
                headroom(site.headroom_a),
            ],
        )
    ]
    children: dict[str | None, list[CircuitLive]] = {}
    names = {c.name for c in snapshot.circuits}
    for circuit in snapshot.circuits:
        parent = circuit.parent if circuit.parent in names else None
        children.setdefault(parent, []).append(circuit)
    chargers = {c.id: c for c in snapshot.chargers}
    shown: set[str] = set()

    def board(circuit: CircuitLive, depth: int) -> None:
        if circuit.name in shown:  # a cycle the configuration check would refuse
            return
        shown.add(circuit.name)
        rows.append(
            (
                f"circuit:{circuit.name}",
                [
                    f"{INDENT * depth}{circuit.name}",
                    per_phase(circuit.limit_a),
                    per_phase(circuit.allocated_a),
                    _board_load(circuit),
                    headroom(circuit.headroom_a),
                ],
            )
        )
        for child in children.get(circuit.name, []):
            board(child, depth + 1)
        for charger_id in circuit.chargers:
            charger = chargers.get(charger_id)
            if charger is not None:
                rows.append(_charger_row(charger, depth + 1))

    for top in children.get(None, []):
        board(top, 1)
    on_boards = {cid for c in snapshot.circuits for cid in c.chargers}
    rows += [_charger_row(c, 1) for c in snapshot.chargers if c.id not in on_boards]
    return rows
