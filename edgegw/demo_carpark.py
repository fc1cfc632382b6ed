"""``edgegw demo --site FILE``: the demo played on a car park of the installer's own.

The file is a gateway configuration (``examples/carpark-three-level.toml``: a main switchboard,
distribution boards per level with meters of their own, 40 chargers). The demo keeps what the
site *is* (``[site]`` limits, ``[[circuits]]``, the chargers with their boards, phases and
currents, which meter is the grid's and which a board's) and replaces what it is *wired to*:
every meter becomes a simulated one on this machine (one bus each), the cloud the simulated
one, the chargers simulated chargers with generated passwords; sections that reach hardware
or other systems (``[mqtt]``, ``[[limits]]``, ``[peak]``, TLS files) are left out. The
simulated meters measure the building's load only, so the site and the boards count it as
``non_ev`` load.

:class:`FuseWatch` follows the circuit tree while the demo runs and says at the end whether any
board or the main fuse was allocated more than its limit, and how close each came.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import tomlkit

from edgegw.config import ConfigError, parse_config
from edgegw.live.snapshot import LiveSnapshot

KEPT_SECTIONS: Final = ("site", "circuits", "chargers", "meters", "auth")
"""What the demo keeps of the car park's file; the rest is rewired or left out."""
CHARGER_KEYS: Final = (
    "id",
    "label",
    "circuit",
    "phases",
    "min_current_a",
    "max_current_a",
    "fallback_current_a",
    "priority",
)
"""What a charger keeps: its place and currents (no credentials, no model: it is simulated)."""
BOARD_BASE_A: Final = 6.0
"""A board's own load (lighting, ventilation) per phase, read by its simulated meter."""


class CarParkError(ValueError):
    """The car park's file cannot be played (said in words, with the file's name)."""


@dataclass(frozen=True, slots=True)
class DemoMeter:
    name: str
    profile: str
    unit_id: int
    role: str
    """'site' (the grid connection) or 'circuit' (a board's)."""


@dataclass(frozen=True, slots=True)
class CarPark:
    path: Path
    document: Mapping[str, Any]
    charger_ids: tuple[str, ...]
    meters: tuple[DemoMeter, ...]
    limit_a: float
    """The main fuse (the lowest phase's limit)."""

    @property
    def circuits(self) -> int:
        return len(self.document.get("circuits", []))


def load_carpark(path: Path) -> CarPark:
    """Read and check ``path``: a configuration this gateway runs, with a site meter."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CarParkError(f"{path}: cannot read it: {exc}") from exc
    try:
        config = parse_config(document, source=str(path))
    except ConfigError as exc:
        raise CarParkError(str(exc)) from exc
    if config.site is None or not config.chargers:
        raise CarParkError(f"{path}: a car park needs a [site] and [[chargers]] to play")
    meters = tuple(
        DemoMeter(m.name, m.profile, m.unit_id, m.role)
        for m in config.meters
        if m.role in ("site", "circuit")
    )
    if not any(m.role == "site" for m in meters):
        raise CarParkError(f"{path}: no [[meters]] entry with role 'site' (the grid meter)")
    return CarPark(
        path,
        document,
        tuple(c.id for c in config.chargers),
        meters,
        min(config.site.limits()),
    )


def carpark_config_text(
    park: CarPark,
    folder: Path,
    *,
    port: int,
    cloud_url: str,
    hashes: Mapping[str, str],
    meter_ports: Mapping[str, int],
) -> str:
    """The demo's configuration for ``park``: its site, boards and chargers, wired to the
    simulated meters (``meter_ports`` by meter name), cloud and chargers."""
    source = park.document
    doc: dict[str, Any] = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "max_connections_per_address": len(park.charger_ids) + 8,
            "max_pending_per_address": len(park.charger_ids) + 8,
        },
        "cloud": {"url": cloud_url},
        "store": {"path": str(folder / "edgegw.db")},
        "control": {"socket": str(folder / "edgegw.sock"), "group": ""},
    }
    for name in KEPT_SECTIONS:
        if name in source:
            doc[name] = copy.deepcopy(source[name])
    doc["site"]["meter_role"] = "non_ev"  # the simulated meters read the building alone
    for circuit in doc.get("circuits", []):
        if "meter" in circuit:
            circuit["meter_role"] = "non_ev"
    wanted = {m.name for m in park.meters}
    doc["meters"] = [
        {**m, "name": m.get("name", "site")}
        for m in doc.get("meters", [])
        if m.get("name", "site") in wanted
    ]
    doc["buses"] = {}
    for meter in doc["meters"]:
        bus = f"demo-{meter['name']}"
        meter["bus"] = bus
        doc["buses"][bus] = {
            "transport": "tcp",
            "host": "127.0.0.1",
            "port": meter_ports[meter["name"]],
        }
    doc["chargers"] = [
        {**{k: c[k] for k in CHARGER_KEYS if k in c}, "password_hash": hashes[c["id"]]}
        for c in doc["chargers"]
    ]
    header = f"# Generated by `edgegw demo --site {park.path}`: its site on simulated parts.\n"
    return header + tomlkit.dumps(doc)


@dataclass(slots=True)
class FuseWatch:
    """The highest share of each node's limit load capping allocated during the run."""

    peaks: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Node name ("main fuse" or a board's) -> (highest allocated on a phase, its limit)."""

    def look(self, snapshot: LiveSnapshot) -> None:
        site = snapshot.site
        if site.allocated_a is not None and site.limit_a is not None:
            self._note("main fuse", site.allocated_a, site.limit_a, site.margin_a or 0.0)
        for circuit in snapshot.circuits:
            if circuit.allocated_a is not None:
                self._note(circuit.name, circuit.allocated_a, circuit.limit_a, circuit.margin_a)

    def _note(
        self,
        name: str,
        allocated: tuple[float, float, float],
        limit: tuple[float, float, float],
        margin: float,
    ) -> None:
        worst = max(range(3), key=lambda p: allocated[p] - (limit[p] - margin))
        room = limit[worst] - margin
        seen = self.peaks.get(name)
        if seen is None or allocated[worst] - room > seen[0] - seen[1]:
            self.peaks[name] = (allocated[worst], room)

    @property
    def exceeded(self) -> list[str]:
        return [name for name, (peak, room) in self.peaks.items() if peak > room + 1e-6]

    def lines(self) -> list[str]:
        if not self.peaks:
            return ["no round allocated anything yet"]
        first = (
            "EXCEEDED at " + ", ".join(self.exceeded)
            if self.exceeded
            else "no fuse exceeded: every node stayed within its limit minus margin"
        )
        return [
            first,
            *(
                f"{name}: at most {peak:.0f} of {room:.0f} A on a phase"
                for name, (peak, room) in self.peaks.items()
            ),
        ]
