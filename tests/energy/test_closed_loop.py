"""Load capping through the real daemon: a Modbus meter (pymodbus server over TCP) whose
currents follow the simulated chargers' actual draw plus a building load."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url

LIMIT = 40.0
MARGIN = 2.0


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait for a physical process (cars ramping, meters polled) to reach a state."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - sampling a simulated physical process
            await asyncio.sleep(0.05)


async def test_building_load_step_is_capped_and_meter_loss_falls_back(
    make_gateway: GatewayFactory,
) -> None:
    building = [10.0]
    chargers: list[SimCharger] = []

    def grid() -> float:
        return building[0] + sum(c.current_a(1) for c in chargers)

    async with SimMeter("eastron-sdm630") as meter:  # live: a constant one looks frozen
        gateway = await make_gateway(
            chargers=[
                {"id": f"CP{i}", "max_current_a": 32, "fallback_current_a": 6} for i in range(2)
            ],
            site={
                "limit_a": LIMIT,
                "margin_a": MARGIN,
                "fallback_ev_a": 12,
                "meter_lost_after": 2,
                "ramp_a_per_s": 50,
            },
            buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
            meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
            auth={"unknown_cards": "accept"},
        )
        assert gateway.controller is not None
        controller = gateway.controller

        async def follow() -> None:  # the meter measures what the site really draws
            while True:
                amps = grid()
                meter.set_currents(amps, amps, amps)
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
                sim = SimCharger(f"CP{i}", gateway_url(gateway), connectors=1, car_current_a=32)
                await sim.connect()
                await sim.boot()
                chargers.append(sim)
            for sim in chargers:
                assert await sim.tap("04A1B2C3") is not None
            # Both cars share what the building leaves: 40 - 2 - 10 = 28 A.
            # Raises wait for the cars' MeterValues: until a car shows it draws what it was
            # offered, the grid meter cannot tell its draw from the building's.
            await until(lambda: grid() > 30 and controller.state().mode == "normal", 15)
            await until(lambda: grid() <= LIMIT - MARGIN + 0.5, 15)
            # The building load steps up: the cars are cut so the grid is back under the limit.
            building[0] = 26.0
            await until(lambda: grid() <= LIMIT - MARGIN + 0.5, 10)
            assert all(c.offered_a(1) <= 6.5 for c in chargers)
            # The meter goes away: fallback (the EVs share fallback_ev_a = 12 A) within seconds.
            await meter.stop()
            await until(lambda: controller.state().mode == "fallback", 8)
            await until(lambda: sum(c.offered_a(1) for c in chargers) <= 12.5, 8)
        finally:
            follower.cancel()
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            for sim in chargers:
                await sim.close()
