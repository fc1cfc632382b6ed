"""A single-phase site (``[site] phases = 1``): its site meter may be a single-phase meter
(Eastron SDM120/SDM230), whose missing L2/L3 count as 0 A, never as a lost meter; load
capping caps L1 as on any site.

The closed loop serves the SDM120 register image written from the independent sources in
``test_meter_images_more.py`` (mbmd, sdm_modbus) with a real pymodbus server, its current
following the simulated single-phase chargers' real draw plus a building load.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from edgegw.config import Config
from edgegw.energy.allocator import Phase
from edgegw.energy.meters import MeterConfigError, MeterService
from edgegw.energy.registers import Reading
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url
from tests.energy.test_closed_loop import until
from tests.energy.test_meter_images import image_of
from tests.energy.test_meter_images_more import SDM120, SINGLE_IMPORTING
from tests.energy.test_planner import Site

LIMIT = 40.0
MARGIN = 2.0


def _config(phases: int, profile: str) -> Config:
    return Config.model_validate(
        {
            "site": {"limit_a": LIMIT, "phases": phases},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": profile, "role": "site"}],
        }
    )


@pytest.mark.parametrize("profile", ["eastron-sdm120", "eastron-sdm630"])
def test_a_single_phase_site_takes_a_single_or_three_phase_site_meter(profile: str) -> None:
    service = MeterService(_config(1, profile))
    assert service.site_meter is not None and service.site_meter.profile.id == profile


def test_a_three_phase_site_still_refuses_a_single_phase_site_meter_and_says_why() -> None:
    with pytest.raises(MeterConfigError, match="current_l2") as info:
        MeterService(_config(3, "eastron-sdm120"))
    assert "role = 'monitor'" in str(info.value) and "phases = 1" in str(info.value)


def test_the_site_currents_of_a_reading() -> None:
    single = Reading(current_l1_a=12.5)
    assert single.site_currents_a(1) == (12.5, 0.0, 0.0)
    assert single.site_currents_a(3) is None  # a three-phase site needs all three
    three = Reading(current_l1_a=12.5, current_l2_a=30.0, current_l3_a=float("nan"))
    assert three.site_currents_a(1) == (12.5, 0.0, 0.0)  # only L1 is the site's
    assert three.site_currents_a(3) is None
    assert Reading(current_l1_a=-0.05).site_currents_a(1) == (0.0, 0.0, 0.0)
    assert Reading(current_l2_a=1.0).site_currents_a(1) is None


def test_an_unconfigured_charger_on_a_single_phase_site_is_counted_on_l1() -> None:
    site = Site(chargers=[{"id": "CP1", "phases": "L1"}], site={"phases": 1})
    assert site.model.charger("CP1").wiring == (Phase.L1,)
    assert site.model.charger("STRANGER").wiring == (Phase.L1,)  # not configured: on L1
    three = Site(chargers=[{"id": "CP1"}])
    assert three.model.charger("STRANGER").wiring == (Phase.L1, Phase.L2, Phase.L3)


class LiveSdm120(SimMeter):
    """The SDM120 image of ``test_meter_images_more``, its values changed by the test; the
    voltage moves a little at every read, as on a live grid (a fixed image looks frozen)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = dict(SINGLE_IMPORTING)
        self._reads = 0
        super().__init__(
            SDM120.profile,
            image=image_of(SDM120, self.values),
            max_read_registers=SDM120.max_read_registers,
            live=False,
        )

    def image(self, *, step: bool = True) -> dict[int, dict[int, int]]:
        if step:
            self._reads += 1
        wobble = 0.1 * (self._reads % 3)
        return image_of(SDM120, {**self.values, "voltage_l1_v": 230.0 + wobble})


async def test_a_single_phase_site_caps_l1_on_an_sdm120_and_never_loses_it(
    make_gateway: GatewayFactory,
) -> None:
    building = [10.0]
    chargers: list[SimCharger] = []
    modes: set[Any] = set()
    meter_states: set[str] = set()

    def grid() -> float:
        return building[0] + sum(c.current_a(1) for c in chargers)

    async with LiveSdm120() as meter:
        gateway = await make_gateway(
            chargers=[
                {"id": f"CP{i}", "max_current_a": 32, "fallback_current_a": 6, "phases": "L1"}
                for i in range(2)
            ],
            site={
                "phases": 1,
                "limit_a": LIMIT,
                "margin_a": MARGIN,
                "fallback_ev_a": 12,
                "meter_lost_after": 2,
                "ramp_a_per_s": 50,
            },
            buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
            meters=[{"name": "grid", "profile": "eastron-sdm120", "poll_interval": 0.2}],
            auth={"unknown_cards": "accept"},
        )
        assert gateway.controller is not None
        controller = gateway.controller

        def measured() -> list[tuple[float, float, float] | None]:
            return [s.measured_a for ch in controller.state().chargers for s in ch.sessions]

        async def follow() -> None:  # the meter measures what the site's one phase draws
            while True:
                amps = grid()
                meter.values["current_l1_a"] = amps
                meter.values["power_w"] = amps * 230.0
                meter_states.add(controller.state().meter)
                if "ok" in meter_states:  # before the first reading a round is in fallback
                    modes.add(controller.mode)  # (the meter is not read yet), rightly
                await asyncio.sleep(0.05)

        async def sample() -> None:  # what the gateway asked for: MeterValues every interval
            while True:
                await asyncio.sleep(1.0)
                for sim in list(chargers):
                    if sim.session(1) is not None:
                        await sim.meter_values(1)

        follower = asyncio.create_task(follow())  # noqa: TID251
        sampler = asyncio.create_task(sample())  # noqa: TID251
        try:
            for i in range(2):
                sim = SimCharger(
                    f"CP{i}", gateway_url(gateway), connectors=1, car_current_a=32, phases=1
                )
                await sim.connect()
                await sim.boot()
                chargers.append(sim)
            for sim in chargers:
                assert await sim.tap("04A1B2C3") is not None
            # Both cars share what the building leaves on L1: 40 - 2 - 10 = 28 A.
            await until(lambda: grid() > 30 and controller.mode == "normal", 15)
            await until(lambda: grid() <= LIMIT - MARGIN + 0.5, 15)
            # The cars' MeterValues are in: the grid meter can tell their draw from the
            # building's.
            await until(lambda: all(a is not None and a[0] > 5 for a in measured()), 15)
            # The building load steps up on L1: the cars are cut (not paused) to share
            # 40 - 2 - 16 = 22 A.
            building[0] = 16.0
            await until(
                lambda: (
                    grid() <= LIMIT - MARGIN + 0.5 and all(c.current_a(1) > 0 for c in chargers)
                ),
                10,
            )
            assert sum(c.offered_a(1) for c in chargers) <= 22.5
            state = controller.state()
            assert state.mode == "normal" and state.meter == "ok"
            assert state.grid_a is not None and state.grid_a[1:] == (0.0, 0.0)
        finally:
            follower.cancel()
            sampler.cancel()
            for task in (follower, sampler):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for sim in chargers:
                await sim.close()
    # The site meter gave L1 alone all along and was never counted lost.
    assert "fallback" not in modes and "normal" in modes, modes
    assert "lost" not in meter_states and "ok" in meter_states, meter_states
