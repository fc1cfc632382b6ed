"""The controller against a charger whose answers the test releases one by one (no websockets):
what a round decides while a profile is still on its way to the charger."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgegw.config import parse_config
from edgegw.energy.chargermodels import load_models
from edgegw.energy.controller import LoadController
from edgegw.energy.registers import Reading
from tests.energy.test_controller import connected, exchanged

MODELS = load_models(Path(__file__).resolve().parents[2] / "hardware" / "chargers")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Sample:
    reading: Reading
    at: float


class Charger:
    """Records the controller's calls; each waits until the test answers it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
        self.arrived = asyncio.Event()

    async def call(self, charger_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.calls.append((action, payload, answer))
        self.arrived.set()
        return await answer

    async def next_limit(self, seen: int) -> float:
        """The limit of the call after the first ``seen`` ones (waits for it to be made)."""
        while len(self.calls) <= seen:
            self.arrived.clear()
            await self.arrived.wait()
        payload = self.calls[seen][1]
        periods = payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]
        return float(periods[0]["limit"])

    def accept(self, index: int) -> None:
        self.calls[index][2].set_result({"status": "Accepted"})


async def test_a_round_during_a_pause_in_flight_does_not_undo_it() -> None:
    config = parse_config(
        {
            "site": {"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": "eastron-sdm630"}],
            "chargers": [{"id": "CP1", "max_current_a": 16}],
        }
    )
    clock = Clock()
    building = [4.0]

    def sample() -> Sample:
        amps = building[0]
        reading = Reading(current_l1_a=amps, current_l2_a=amps, current_l3_a=amps)
        return Sample(reading, clock())

    charger = Charger()
    controller = LoadController(
        config, MODELS, charger.call, sample, clock=clock, wall_clock=lambda: 1.8e9
    )
    try:
        connected(controller, "CP1")
        assert await charger.next_limit(0) == 0  # its safe profile
        charger.accept(0)
        await controller.wait_settled()
        exchanged(
            controller, "CP1", "StatusNotification", {"connectorId": 1, "status": "Charging"}, {}
        )
        exchanged(controller, "CP1", "StartTransaction", {"connectorId": 1}, {"transactionId": 7})
        clock.now += 1
        controller.run_round()
        assert await charger.next_limit(1) > 0  # started
        charger.accept(1)
        await controller.wait_settled()

        clock.now += 200  # past its minimum run time
        building[0] = 40.0  # the building takes everything: the car is paused
        controller.run_round()
        assert await charger.next_limit(2) == 0
        building[0] = 4.0  # and gives it back while the 0 A profile is on its way
        clock.now += 1
        controller.run_round()  # the session still counts at its old limit in force
        charger.accept(2)
        await controller.wait_until(lambda: controller.settled() or len(charger.calls) > 3)
        assert len(charger.calls) == 3  # not its old limit again, then 0 A, then...
        session = controller.state().chargers[0].sessions[0]
        assert (session.limit_a, session.offered_a, session.reason) == (0, 0, "paused_hold")
    finally:
        await controller.close()


@dataclass(frozen=True)
class FailedSample:
    """A valid sample, and a later read of the meter that failed (the meter hold)."""

    reading: Reading
    at: float
    failed_at: float | None


async def test_a_meter_hold_counts_a_charger_that_cannot_pause_at_its_minimum() -> None:
    generic = MODELS["generic-ocpp16"]
    stubborn = generic.model_copy(
        update={
            "id": "no-pause",
            "smart_charging": generic.smart_charging.model_copy(update={"zero_current": "ignored"}),
        }
    )
    models = {**MODELS, "no-pause": stubborn}

    def site(model: str) -> Any:
        return parse_config(
            {
                "site": {"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100},
                "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
                "meters": [{"profile": "eastron-sdm630"}],
                "chargers": [{"id": "CP1", "model": model}],
            }
        )

    clock = Clock()
    failed: list[float | None] = [None]

    def sample() -> FailedSample:
        reading = Reading(current_l1_a=4.0, current_l2_a=4.0, current_l3_a=4.0)
        return FailedSample(reading, clock(), failed[0])

    charger = Charger()
    controller = LoadController(
        site("generic-ocpp16"), models, charger.call, sample, clock=clock, wall_clock=lambda: 1.8e9
    )
    try:
        connected(controller, "CP1")
        assert await charger.next_limit(0) == 0  # paused: 0 A in force
        charger.accept(0)
        await controller.wait_settled()
        controller.use_config(site("no-pause"))  # a model that a 0 A profile does not pause
        assert await charger.next_limit(1) == 6  # its safe profile, not yet answered
        exchanged(
            controller, "CP1", "StatusNotification", {"connectorId": 1, "status": "Charging"}, {}
        )
        exchanged(controller, "CP1", "StartTransaction", {"connectorId": 1}, {"transactionId": 7})
        failed[0] = clock()  # the meter's last read failed: no raise, no start
        clock.now += 1
        controller.run_round()
        session = controller.state().chargers[0].sessions[0]
        assert session.offered_a == 0
        # Kept at 0 A it would get its minimum anyway (0 A cannot be said to it): counted so.
        assert (session.limit_a, session.reason) == (6, "cannot_pause")
    finally:
        await controller.close()
