"""The limits from outside and peak shaving in the views (issue 22): a running gateway with a
§14a control box on a GPIO value file and a [peak] target shows each limit (active or off,
its grant) and the month's peak in the live snapshot, on the TUI's Energy page text, in the
MQTT site state and as Home Assistant entities. A real daemon, a real pymodbus site meter, a
real mosquitto; the control box's contact is a real file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgegw.live.snapshot import LimitLive, LiveSnapshot, PeakLive
from edgegw.sim.meter import SimMeter
from edgegw.telemetry.discovery import SiteFeatures, site_sensors
from edgegw.tui.outside import outside_lines
from tests.conftest import GatewayFactory
from tests.mqtt.conftest import PREFIX, Mosquitto, Recorder, telemetry
from tests.tui.fakes import site_snapshot


@pytest.fixture
async def meter() -> AsyncIterator[SimMeter]:
    async with SimMeter("eastron-sdm630") as sim:
        sim.set_currents(10, 10, 10)
        yield sim


async def test_a_limit_and_the_peak_are_shown_everywhere(
    make_gateway: GatewayFactory, mosquitto: Mosquitto, meter: SimMeter, tmp_path: Path
) -> None:
    contact = tmp_path / "value"
    contact.write_text("1\n")  # the DSO dims the board
    gateway = await make_gateway(
        site={"limit_a": 100, "margin_a": 2},
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
        circuits=[{"name": "steuve", "limit_a": 63}],
        chargers=[{"id": f"CP{i}", "circuit": "steuve"} for i in range(3)],
        limits=[
            {
                "name": "dso",
                "source": "gpio",
                "path": str(contact),
                "circuit": "steuve",
                "para14a": True,
                "poll_interval": 0.05,
            }
        ],
        peak={"target_kw": 5},
        mqtt=mosquitto.section(),
    )
    state = f"{PREFIX}/site/state"
    async with (
        telemetry(gateway) as (live, publisher),
        Recorder(mosquitto, "#") as recorder,
    ):
        await publisher.wait_online()
        active = await recorder.wait_json(
            state, lambda s: s.get("limits", {}).get("dso", {}).get("active") is True
        )
        limit = active["limits"]["dso"]
        assert (limit["node"], limit["para14a"], limit["source"]) == ("steuve", True, "gpio")
        assert limit["granted_kw"] is not None and limit["since"] is not None
        assert active["limits_active"] == 1
        assert active["peak_target_kw"] == 5 and "peak_month_kw" in active
        assert active["peak_shaved_quarters"] >= 0

        snapshot = live.snapshot()
        (dso,) = snapshot.limits
        assert dso.active and dso.chargers == 3 and snapshot.peak is not None
        text = "\n".join(outside_lines(snapshot, None, snapshot.site.at))
        assert "Limits from outside: 1 of 1 active" in text
        assert "dso (§14a, gpio) on board steuve: ACTIVE since" in text
        assert "3 charger(s) granted" in text and "Peak " in text
        assert LiveSnapshot.from_dict(json.loads(json.dumps(snapshot.as_dict()))) == snapshot

        node = publisher.topics.node
        for component, key in (
            ("binary_sensor", "limit_dso"),
            ("sensor", "peak_month"),
            ("sensor", "peak_shaved_quarters"),
            ("binary_sensor", "peak_limiting"),
        ):
            await recorder.wait_for(f"homeassistant/{component}/{node}/{node}_{key}/config")

        contact.write_text("0\n")  # released
        released = await recorder.wait_json(
            state, lambda s: s.get("limits", {}).get("dso", {}).get("active") is False
        )
        assert released["limits_active"] == 0
    assert not live.snapshot().limits[0].active


def test_the_lines_say_an_unread_source_and_a_month_over_its_target() -> None:
    limits = (
        LimitLive(
            name="relay",
            source="modbus",
            node="site",
            para14a=False,
            active=False,
            since=None,
            limit_a=(40.0, 40.0, 40.0),
            granted_kw=None,
            chargers=None,
            last_error="bus 'main': timed out",
        ),
    )
    peak = PeakLive(
        month="2026-12",
        target_kw=40,
        effective_target_kw=42.5,
        month_peak_kw=42.5,
        month_peak_at=None,
        projected_kw=39.04,
        limiting=True,
        shaved_quarters=3,
        shaved_kw_max=2.25,
    )
    site = LiveSnapshot.from_dict(site_snapshot()).site
    text = "\n".join(outside_lines(LiveSnapshot(site, (), (), limits, peak), None, site.at))
    assert "relay (modbus) on the site: off; cannot read it: bus 'main': timed out" in text
    assert "Peak 2026-12: month's peak 42.5 kW (target 40 kW, 42.5 kW in force" in text
    assert "heading for 39.0 kW, SHAVING NOW; shaved in 3 quarter-hour(s), at most 2.2 kW" in text
    assert outside_lines(LiveSnapshot(site, ()), None, 0) == []
    features = SiteFeatures(meter=True, cloud=False, load_capping=True, commands=False)
    assert not [s for s in site_sensors(features) if "peak" in s.key or "limit_" in s.key]
