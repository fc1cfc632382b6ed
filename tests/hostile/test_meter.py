"""A misbehaving Modbus meter (issue 17, items 10 and 18), served by a real pymodbus server.

The meter is a :class:`SimMeter` on a TCP port; the gateway side is the real
:class:`MeterService` poller and, where the point is what load capping does, the real
:class:`LoadController` driving a simulated charger over a real OCPP websocket. Time is an
injected clock that the test advances one poll at a time, so "how long until fallback" is a
number of polls, not a race against the wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from edgegw.config import Config, parse_config
from edgegw.energy.controller import LoadController
from edgegw.energy.meters import HealthState, MeterPoller, MeterService
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from tests.energy.test_controller import MODELS, TAG, Csms, FakeClock, connected

BUILDING = 4.0
METER_LOST_AFTER = 5.0
POLL = 1.0


def site_config(meter: SimMeter, **site: Any) -> Config:
    return parse_config(
        {
            "site": {
                "limit_a": 40,
                "margin_a": 2,
                "meter_lost_after": METER_LOST_AFTER,
                "fallback_ev_a": 6,
                **site,
            },
            "buses": {
                "main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port, "retries": 0}
            },
            "meters": [{"name": "grid", "profile": "eastron-sdm630", "poll_interval": POLL}],
            "chargers": [{"id": "CP1", "max_current_a": 32}],
        }
    )


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@dataclass
class Site:
    """A real meter, its real poller and the load controller, on one injected clock."""

    meter: SimMeter
    clock: FakeClock
    service: MeterService
    poller: MeterPoller
    controller: LoadController
    csms: Csms
    charger: SimCharger | None = None

    async def step(self) -> None:
        """One poll interval: the meter measures the site, is read once, a round runs."""
        self.clock.advance(POLL)
        draw = self.charger.current_a(1) if self.charger is not None else 0.0
        amps = BUILDING + draw
        self.meter.set_currents(amps, amps, amps)
        await self.poller.poll_once()
        if self.charger is not None and self.charger.session(1) is not None:
            await self.charger.meter_values(1)
        self.controller.run_round()
        await self.controller.wait_settled(5)


@pytest.fixture
async def site() -> AsyncIterator[Any]:
    made: list[Site] = []

    async def make(**site: Any) -> Site:
        meter = SimMeter("eastron-sdm630")  # live: its voltages move as a real meter's do
        await meter.start()
        clock = FakeClock()
        config = site_config(meter, **site)
        service = MeterService(config, clock=clock, reconnect_min_delay=0, reconnect_max_delay=0)
        poller = service.site_meter
        assert poller is not None
        csms = Csms(accepted_tags=[TAG])
        await csms.start()

        async def call(charger_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
            return await csms.call(charger_id, action, payload, timeout=5)

        controller = LoadController(config, MODELS, call, lambda: poller.latest, clock=clock)
        csms.controller = controller
        made.append(Site(meter, clock, service, poller, controller, csms))
        return made[-1]

    yield make
    for s in made:
        await s.controller.close()
        if s.charger is not None:
            await s.charger.close()
        await s.csms.stop()
        await s.service.close()
        await s.meter.stop()


async def test_a_frozen_meter_falls_back_as_soon_as_a_silent_one(site: Any) -> None:
    s: Site = await site()
    # The frozen check follows the site's meter_lost_after: no separate, longer delay.
    assert s.poller.frozen_after == METER_LOST_AFTER
    for _ in range(3):
        await s.step()
    assert s.controller.state().meter == "ok"
    s.meter.freeze()  # the same registers from now on (a hung meter, a caching gateway)
    polls = 0
    while s.controller.state().meter == "ok":
        await s.step()
        polls += 1
        assert polls <= 40, "a frozen meter never made load capping fall back"
    # The first frozen read still shows registers not seen before; from there on as for a
    # meter that went silent: fallback at the first round after its data is meter_lost_after
    # old (it was 30 identical reads, then meter_lost_after more: 36 polls here).
    assert polls == 1 + METER_LOST_AFTER / POLL + 1
    assert s.controller.state().mode == "fallback"
    assert s.poller.health.state is HealthState.STALE
    assert "same registers" in (s.poller.health.last_error or "")
    s.meter.unfreeze()
    await s.step()
    assert s.controller.state().meter == "ok" and s.controller.state().mode == "normal"


async def test_after_a_bad_reading_the_limits_hold_and_never_ramp(site: Any) -> None:
    s: Site = await site(ramp_a_per_s=1)
    csms = s.csms
    charger = SimCharger("CP1", csms.url, connectors=1, car_current_a=32)
    await charger.connect()
    await csms.wait_connected("CP1")
    s.charger = charger
    connected(s.controller, "CP1")
    await charger.boot()
    await charger.status(1, "Available")
    assert await charger.tap(TAG) is not None
    for _ in range(4):  # started at its minimum, then 1 A more a second
        await s.step()
    before = charger.offered_a(1)
    await s.step()
    assert charger.offered_a(1) > before  # ramping up on good readings

    s.meter.serve_nan()  # garbage: every read is rejected from now on
    held = charger.offered_a(1)
    for _ in range(int(METER_LOST_AFTER / POLL) - 1):  # within meter_lost_after: no fallback
        await s.step()
        assert s.poller.health.state is HealthState.ERROR
        assert s.controller.state().meter == "ok"  # the last valid reading is recent ...
        assert charger.offered_a(1) <= held  # ... but no raise on it: there is no reading
    session = s.controller.state().chargers[0].sessions[0]
    assert session.reason == "meter_hold"

    s.meter.clear_faults()
    await s.step()
    await s.step()
    assert charger.offered_a(1) > held  # good readings again: the ramp goes on


async def test_an_answer_for_another_function_code_is_a_failed_read(
    site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s: Site = await site()
    assert await s.poller.poll_once() is not None  # the SDM630 is read with FC4
    good = s.poller.latest
    assert good is not None and good.failed_at is None
    s.meter.answer_function_code = 3  # a holding-registers (FC3) answer to the FC4 request
    with caplog.at_level(logging.WARNING, logger="edgegw.energy.meters"):
        assert await s.poller.poll_once() is None
    assert s.poller.reads_failed == 1
    health = s.poller.health
    assert health.state is HealthState.ERROR and health.error_kind == "frame"
    assert "function code 3 (read holding registers), not 4" in (health.last_error or "")
    assert any("function code 3" in r.getMessage() for r in caplog.records)
    latest = s.poller.latest  # the last valid reading stays, marked: a read failed since
    assert latest is not None and latest.reading == good.reading and latest.failed_at is not None
    s.meter.answer_function_code = None
    assert await s.poller.poll_once() is not None
    assert s.poller.health.state is HealthState.OK
