"""Meter sampling of a 2.0.1 station through its device model (``edgegw.energy.sampling201``).

The station here is a small device model answering GetVariables/SetVariables as OCPP 2.0.1
B06/B05 say; every request the gateway builds is checked against the ``ocpp`` library's v201
schemas. The end-to-end run (a real gateway, a simulated station) is in
``tests/v201/test_capping201.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocpp.messages import get_validator

from edgegw.energy.sampling import AUTOMATIC
from edgegw.energy.sampling201 import Outcome, configure, touches_sampling

Variable = tuple[str, str]


class DeviceModel:
    """Variables by (component, variable); ``accepts`` decides a SetVariables value."""

    def __init__(
        self,
        variables: dict[Variable, str],
        accepts: Callable[[Variable, str], str] = lambda _v, _x: "Accepted",
    ) -> None:
        self.variables = dict(variables)
        self.accepts = accepts
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def ask(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        get_validator(2, action, "2.0.1").validate(payload)
        self.requests.append((action, payload))
        if action == "GetVariables":
            results = []
            for item in payload["getVariableData"]:
                key = (item["component"]["name"], item["variable"]["name"])
                value = self.variables.get(key)
                result = {
                    "attributeStatus": "Accepted" if value is not None else "UnknownComponent",
                    "component": item["component"],
                    "variable": item["variable"],
                }
                if value is not None:
                    result["attributeValue"] = value
                results.append(result)
            return {"getVariableResult": results}
        [item] = payload["setVariableData"]
        key = (item["component"]["name"], item["variable"]["name"])
        status = (
            "UnknownComponent"
            if key not in self.variables
            else self.accepts(key, item["attributeValue"])
        )
        if status in ("Accepted", "RebootRequired"):
            self.variables[key] = item["attributeValue"]
        return {
            "setVariableResult": [
                {
                    "attributeStatus": status,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            ]
        }

    def sets(self) -> list[tuple[str, str]]:
        return [
            (
                f"{p['setVariableData'][0]['component']['name']}.{p['setVariableData'][0]['variable']['name']}",
                p["setVariableData"][0]["attributeValue"],
            )
            for a, p in self.requests
            if a == "SetVariables"
        ]


FULL = {
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): "Energy.Active.Import.Register",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "0",
    ("AlignedDataCtrlr", "Measurands"): "Energy.Active.Import.Register",
    ("AlignedDataCtrlr", "Interval"): "900",
}


async def run(station: DeviceModel, possible: list[str] | None = None) -> Outcome:
    return await configure(station.ask, wanted=AUTOMATIC, possible=possible, interval_s=10)


async def test_the_sampled_list_gets_what_capping_needs_and_keeps_the_cloud_s() -> None:
    station = DeviceModel(FULL)
    outcome = await run(station)
    assert station.sets() == [
        (
            "SampledDataCtrlr.TxUpdatedMeasurands",
            "Energy.Active.Import.Register,Current.Import,Power.Active.Import,Current.Offered",
        ),
        ("SampledDataCtrlr.TxUpdatedInterval", "10"),
    ]
    assert outcome.measurands == ("Energy.Active.Import.Register", *AUTOMATIC)
    assert outcome.interval_s == 10
    assert outcome.refused == {}
    assert [a for a, _ in station.requests].count("GetVariables") == 1


async def test_a_rejected_list_loses_the_least_needed_measurand_first() -> None:
    station = DeviceModel(
        FULL,
        lambda key, value: (
            "Rejected" if "Current.Offered" in value or "Power" in value else "Accepted"
        ),
    )
    outcome = await run(station)
    assert outcome.measurands == ("Energy.Active.Import.Register", "Current.Import")
    assert outcome.refused == {
        "SampledDataCtrlr.TxUpdatedMeasurands": "Power.Active.Import, Current.Offered: not taken"
    }


async def test_what_its_model_cannot_sample_is_never_asked_and_a_frequent_interval_stays() -> None:
    station = DeviceModel({**FULL, ("SampledDataCtrlr", "TxUpdatedInterval"): "5"})
    outcome = await run(station, possible=["Energy.Active.Import.Register", "Current.Import"])
    assert station.sets() == [
        ("SampledDataCtrlr.TxUpdatedMeasurands", "Energy.Active.Import.Register,Current.Import")
    ]
    assert outcome.interval_s == 5  # samples more often already: the cloud may want that


async def test_without_a_sampled_list_the_aligned_data_carries_the_currents() -> None:
    aligned_only = {k: v for k, v in FULL.items() if k[0] == "AlignedDataCtrlr"}
    station = DeviceModel(aligned_only)
    outcome = await run(station)
    assert station.sets() == [
        (
            "AlignedDataCtrlr.Measurands",
            "Energy.Active.Import.Register,Current.Import,Power.Active.Import,Current.Offered",
        ),
        ("AlignedDataCtrlr.Interval", "10"),
    ]
    assert outcome.refused == {"SampledDataCtrlr.TxUpdatedMeasurands": "not in its device model"}
    assert outcome.interval_s == 10


async def test_a_station_refusing_every_sampled_list_falls_back_to_aligned_data() -> None:
    station = DeviceModel(
        FULL, lambda key, _v: "Rejected" if key[0] == "SampledDataCtrlr" else "Accepted"
    )
    outcome = await run(station)
    assert outcome.measurands is not None and "Current.Import" in outcome.measurands
    assert ("AlignedDataCtrlr.Interval", "10") in station.sets()
    assert outcome.refused["SampledDataCtrlr.TxUpdatedMeasurands"] == "answered Rejected"


async def test_a_model_that_cannot_sample_currents_changes_no_aligned_data() -> None:
    station = DeviceModel(FULL)
    outcome = await run(station, possible=["Energy.Active.Import.Register", "Power.Active.Import"])
    assert [key for key, _ in station.sets()] == [
        "SampledDataCtrlr.TxUpdatedMeasurands",
        "SampledDataCtrlr.TxUpdatedInterval",
    ]
    assert outcome.refused == {
        "SampledDataCtrlr.TxUpdatedMeasurands": "its model cannot sample Current.Import"
    }


async def test_reboot_required_is_taken_and_said() -> None:
    station = DeviceModel(FULL, lambda _k, _v: "RebootRequired")
    outcome = await run(station)
    assert outcome.reboot_required == [
        "SampledDataCtrlr.TxUpdatedMeasurands",
        "SampledDataCtrlr.TxUpdatedInterval",
    ]


def test_a_cloud_set_variables_of_the_sampling_is_noticed() -> None:
    def answer(component: str, variable: str, status: str) -> dict[str, Any]:
        return {
            "setVariableResult": [
                {
                    "attributeStatus": status,
                    "component": {"name": component},
                    "variable": {"name": variable},
                }
            ]
        }

    assert touches_sampling({}, answer("SampledDataCtrlr", "TxUpdatedMeasurands", "Accepted"))
    assert touches_sampling({}, answer("AlignedDataCtrlr", "Interval", "RebootRequired"))
    assert not touches_sampling({}, answer("SampledDataCtrlr", "TxUpdatedMeasurands", "Rejected"))
    assert not touches_sampling({}, answer("OCPPCommCtrlr", "HeartbeatInterval", "Accepted"))
    assert not touches_sampling({}, None)
