"""The checklist's MeterValues step, against the commissioning observer fed as the hub feeds it:
what it says when a charger samples Current.Import where load capping does not read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgegw.commission.checklist import Checklist
from edgegw.commission.observer import CommissionObserver
from edgegw.commission.run import RunOptions, SiteView, Step
from edgegw.config import parse_config
from edgegw.energy.chargermodels import load_models, model_for
from edgegw.ocpp.events import ChargerConnected
from edgegw.ocpp.interpret import interpret

HARDWARE = Path(__file__).resolve().parents[2] / "hardware" / "chargers"


async def meter_values_step(sampled_values: list[dict[str, Any]]) -> Step:
    """Run the step on a charger that answers TriggerMessage MeterValues with these values."""
    now = [1000.0]
    config = parse_config({"chargers": [{"id": "CP1"}]})
    observer = CommissionObserver(clock=lambda: now[0])
    observer.handle(ChargerConnected(charger_id="CP1", at=now[0]))

    async def call(charger_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert (action, payload["requestedMessage"]) == ("TriggerMessage", "MeterValues")
        now[0] += 1
        request = {
            "connectorId": payload["connectorId"],
            "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": sampled_values}],
        }
        for event in interpret(charger_id, "MeterValues", request, {}, now[0]):
            observer.handle(event)
        return {"status": "Accepted"}

    checklist = Checklist(
        site=SiteView(lambda: config, {"CP1"}, controller=None, authorizer=None),
        observer=observer,
        store=lambda: pytest.fail("the MeterValues step reads no store"),
        call=call,
        clock=lambda: now[0],
        charger_id="CP1",
        row=None,
        model=model_for(load_models(HARDWARE), config.charger("CP1")),
        options=RunOptions(card=None, card_text=None, tap=False, step_timeout=5, tap_timeout=5),
    )
    step = checklist.steps["meter_values"]
    await checklist._meter_values(step)
    return step


def current(phase: str, **extra: Any) -> dict[str, Any]:
    return {"value": "16", "measurand": "Current.Import", "phase": phase, "unit": "A", **extra}


@pytest.mark.parametrize(
    "extra",
    [{"location": "Inlet"}, {"unit": "mA"}],
    ids=["inlet", "milliamps"],
)
async def test_currents_load_capping_does_not_read_are_named_so(extra: dict[str, Any]) -> None:
    step = await meter_values_step([current(p, **extra) for p in ("L1", "L2", "L3")])
    assert step.status == "fail"
    assert (
        "Current.Import reported only at Inlet or in an unsupported unit (or not as a plain "
        "reading of now), which load capping does not read" in step.detail
    )
    assert "no Current.Import" not in step.detail  # it does sample it
    assert "configure" not in (step.hint or "")  # asking for Current.Import changes nothing


async def test_no_current_at_all_asks_for_it() -> None:
    step = await meter_values_step([{"value": "100", "measurand": "Energy.Active.Import.Register"}])
    assert step.status == "fail"
    assert "no Current.Import (samples Energy.Active.Import.Register)" in step.detail
    assert "edgegw chargers configure CP1" in (step.hint or "")


async def test_currents_at_the_outlet_pass() -> None:
    step = await meter_values_step([current(p) for p in ("L1", "L2", "L3")])
    assert step.status == "pass", step.detail
