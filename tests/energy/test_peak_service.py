"""Peak shaving in a running gateway: the site meter (a real pymodbus server) in, the site
limit lowered, the month's peak read back from the database at start."""

from __future__ import annotations

import time
from pathlib import Path

from edgegw.energy.peak import QuarterResult, quarter_start
from edgegw.sim.meter import SimMeter
from edgegw.store.db import Database
from edgegw.store.limitlog import LimitLog
from tests.conftest import GatewayFactory


def _sections(meter: SimMeter, db: Path, target_kw: float) -> dict[str, object]:
    return {
        "store": {"path": str(db)},
        "site": {"limit_a": 32, "margin_a": 2},
        "buses": {"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        "meters": [{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
        "peak": {"target_kw": target_kw, "margin_kw": 0},
    }


async def test_an_import_heading_over_the_target_lowers_the_site_limit(
    make_gateway: GatewayFactory, meter: SimMeter, tmp_path: Path
) -> None:
    meter.set_currents(10.0, 10.0, 10.0)
    meter.set_power(6900.0)  # heading for 6.9 kW against a 2 kW target
    gateway = await make_gateway(**_sections(meter, tmp_path / "gw.db", 2.0))
    assert gateway.controller is not None and gateway.outside_limits is not None
    controller = gateway.controller
    await controller.wait_until(lambda: controller.state().limit_a[0] < 10.0)
    peak = gateway.outside_limits.peak
    assert peak is not None
    status = peak.status()
    assert status["limiting"] is True
    assert status["cap_a"] is not None


async def test_below_the_target_nothing_is_lowered(
    make_gateway: GatewayFactory, meter: SimMeter, tmp_path: Path
) -> None:
    meter.set_currents(2.0, 2.0, 2.0)
    meter.set_power(1380.0)
    # 30 kW: above the 22.1 kW the site can draw, whatever the time in the quarter-hour
    gateway = await make_gateway(**_sections(meter, tmp_path / "gw.db", 30.0))
    assert gateway.outside_limits is not None and gateway.outside_limits.peak is not None
    peak = gateway.outside_limits.peak
    assert gateway.controller is not None
    await gateway.controller.wait_until(lambda: peak.status()["projected_kw"] is not None)
    assert gateway.controller.state().limit_a == (32.0, 32.0, 32.0)
    assert peak.status()["limiting"] is False


async def test_the_months_peak_survives_a_restart(
    make_gateway: GatewayFactory, meter: SimMeter, tmp_path: Path
) -> None:
    path = tmp_path / "gw.db"
    db = await Database.open(path)
    earlier = quarter_start(time.time()) - 900  # the quarter-hour before this one
    await LimitLog(db).quarter(QuarterResult(earlier, 31.5, 33.0, 120.0, 25.0))
    await db.close()
    meter.set_power(1380.0)
    gateway = await make_gateway(**_sections(meter, path, 25.0))
    assert gateway.outside_limits is not None and gateway.outside_limits.peak is not None
    peak = gateway.outside_limits.peak
    assert gateway.controller is not None
    await gateway.controller.wait_until(lambda: peak.status()["projected_kw"] is not None)
    status = peak.status()
    if status["month"] == time.strftime("%Y-%m", time.gmtime(earlier)):  # not across a month
        assert status["month_peak_kw"] == 31.5
        assert status["effective_target_kw"] == 31.5
        assert status["shaved_quarters"] == 1
