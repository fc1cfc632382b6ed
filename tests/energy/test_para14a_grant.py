"""§14a: a dimmed circuit's controllable chargers can draw at least P_min,14a (BK6-22-300),
whatever the circuit's margin, the phases they are wired to and the board's other load.

Before the fix the grant was a plain circuit limit: the circuit's margin came off it (6.08 A
less 2 A: the car was paused), a single-phase charger got one phase's share, and the activation
log said 4.195 kW the chargers never got."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from edgegw.config import parse_config
from edgegw.config.limits import LimitConfig
from edgegw.energy import para14a
from edgegw.energy.external import grant_for
from edgegw.energy.sitemodel import SiteModel
from edgegw.energy.siterecords import Tuning
from tests.energy.test_board_meters import Park
from tests.energy.test_planner import ALL_MODELS, WALL, Site, connected

DSO = {"name": "dso", "source": "gpio", "path": "/tmp/x", "circuit": "steuve", "para14a": True}


@dataclass
class DimmedSite(Site):
    circuit: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config = parse_config(
            {
                "site": {"limit_a": 63, "margin_a": 2, "ramp_a_per_s": 100},
                "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
                "meters": [{"profile": "eastron-sdm630"}],
                "circuits": [{"name": "steuve", "limit_a": 32, **self.circuit}],
                "chargers": self.chargers,
                "limits": [DSO],
            }
        )
        self.model = SiteModel(
            self.config,
            ALL_MODELS,
            clock=lambda: self.now,
            wall_clock=lambda: WALL,
            tuning=Tuning(),
        )


def drawable_kw(site: Site) -> float:
    """What the chargers may draw under their limits in force (each on its wired phases)."""
    kw = 0.0
    for ch in site.model.chargers.values():
        for s in ch.sessions.values():
            kw += (s.limit_a or 0.0) * 230 * len(s.car_phases or ch.site_phases) / 1000
    return kw


def dimmed(chargers: list[dict[str, Any]], **circuit: Any) -> tuple[float, float]:
    site = DimmedSite(chargers, circuit=circuit)
    ids = [c["id"] for c in chargers]
    connected(site, *ids)
    for i, cid in enumerate(ids):
        site.plug(cid, i + 1)
    site.building = (2.0, 2.0, 2.0)
    site.round()
    site.ack_all()
    grant = grant_for(site.config.limits[0], site.config)
    site.model.lower_limit("dso", "steuve", grant.limit_a)
    for _ in range(5):
        for cid in ids:
            site.measure(cid, site.model.chargers[cid].offered(1))
        site.round()
        site.ack_all()
    return drawable_kw(site), grant.granted_kw or 0.0


@pytest.mark.parametrize("margin", [None, 0, 3])
def test_one_three_phase_charger_keeps_4_2_kw_whatever_the_margin(margin: int | None) -> None:
    circuit = {} if margin is None else {"margin_a": margin}
    kw, granted = dimmed([{"id": "CP1", "max_current_a": 16, "circuit": "steuve"}], **circuit)
    assert kw >= 4.2 and granted >= 4.2
    assert kw == pytest.approx(granted, abs=0.001)  # the log says what can really be drawn


@pytest.mark.parametrize("phases", ["L1", "L3"])
def test_one_single_phase_charger_keeps_4_2_kw_on_its_phase(phases: str) -> None:
    kw, granted = dimmed(
        [{"id": "CP1", "max_current_a": 32, "circuit": "steuve", "phases": phases}]
    )
    assert kw >= 4.2 and granted == pytest.approx(kw, abs=0.001)


def test_three_chargers_keep_10_5_kw() -> None:
    kw, _ = dimmed([{"id": f"CP{i}", "max_current_a": 16, "circuit": "steuve"} for i in range(3)])
    assert kw >= para14a.minimum_power_kw(3) - 0.01
    assert kw <= para14a.minimum_power_kw(3) + 0.2  # still dimmed: the minimum, not more


def test_the_log_says_what_a_small_charger_can_draw() -> None:
    # a single-phase charger of at most 10 A cannot take 4.2 kW: the log says 2.3 kW
    config = parse_config(
        {
            "site": {"limit_a": 63},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": "eastron-sdm630"}],
            "circuits": [{"name": "steuve", "limit_a": 32}],
            "chargers": [{"id": "CP1", "max_current_a": 10, "circuit": "steuve", "phases": "L2"}],
            "limits": [DSO],
        }
    )
    grant = grant_for(config.limits[0], config)
    assert grant.limit_a == (0.0, 18.3, 0.0)
    assert grant.granted_kw == pytest.approx(2.3)


def test_a_boards_other_load_does_not_eat_the_grant() -> None:
    """The grant is for the chargers: a metered board's other load (lifts, lights) comes on top
    of it, within the board's own limit."""
    park = Park(
        circuits=[{"name": "steuve", "limit_a": 50, "margin_a": 2, "meter": "m1"}],
        chargers=[{"id": "CP1", "circuit": "steuve", "max_current_a": 32}],
    )
    park.model.config = park.model.config.model_copy(
        update={"limits": (LimitConfig.model_validate(DSO),)}
    )
    park.plug("CP1", 1)
    park.own = {"steuve": (20.0, 20.0, 20.0)}
    park.settle()
    grant = grant_for(park.model.config.limits[0], park.model.config)
    park.model.lower_limit("dso", "steuve", grant.limit_a)
    park.settle()
    assert park.limits()["CP1"] == pytest.approx(grant.limit_a[0])  # 6.1 A: 4.2 kW
    # the board's fuse still holds: with 45 A of other load the car gets what is left
    park.own = {"steuve": (45.0, 45.0, 45.0)}
    park.settle()
    assert park.limits()["CP1"] == 0.0  # 50 - 2 - 45 = 3 A < 6 A: paused
