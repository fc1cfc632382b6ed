"""A 2.0.1 device model read from NotifyReport calls into what ``chargers probe`` shows.

The reports are checked against the ``ocpp`` library's 2.0.1 NotifyReport schema first, so the
reader is tested on what a station may really send; they come out of order, split in parts,
with entries the reader must skip."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema

from edgegw.cli.commission import _render_probe
from edgegw.commission.devicemodel import (
    missing_variables,
    read_reports,
    rows,
    summarize_device_model,
)


def entry(
    component: str,
    name: str,
    value: str | None = None,
    *,
    instance: str | None = None,
    evse: int | None = None,
    connector: int | None = None,
    max_limit: float | None = None,
    mutability: str = "ReadWrite",
) -> dict[str, Any]:
    comp: dict[str, Any] = {"name": component}
    if evse is not None:
        comp["evse"] = {"id": evse, **({} if connector is None else {"connectorId": connector})}
    variable: dict[str, Any] = {"name": name}
    if instance is not None:
        variable["instance"] = instance
    attribute: dict[str, Any] = {"type": "Actual", "mutability": mutability}
    if value is not None:
        attribute["value"] = value
    out: dict[str, Any] = {
        "component": comp,
        "variable": variable,
        "variableAttribute": [attribute],
    }
    if max_limit is not None:
        out["variableCharacteristics"] = {
            "dataType": "integer",
            "maxLimit": max_limit,
            "supportsMonitoring": False,
        }
    return out


def station_reports() -> list[dict[str, Any]]:
    first = [
        entry("SmartChargingCtrlr", "Available", "true", mutability="ReadOnly"),
        entry("SmartChargingCtrlr", "Enabled", "true"),
        entry("SmartChargingCtrlr", "RateUnit", "A,W", mutability="ReadOnly"),
        entry("SmartChargingCtrlr", "PeriodsPerSchedule", "24", mutability="ReadOnly"),
        entry("SmartChargingCtrlr", "ProfileStackLevel", "8", mutability="ReadOnly"),
        entry(
            "SmartChargingCtrlr",
            "Entries",
            "1",
            instance="ChargingProfiles",
            max_limit=20,
            mutability="ReadOnly",
        ),
        entry("SmartChargingCtrlr", "Phases3to1", "false", mutability="ReadOnly"),
        entry("LocalAuthListCtrlr", "Enabled", "true"),
        entry("LocalAuthListCtrlr", "Entries", "0", max_limit=1000, mutability="ReadOnly"),
    ]
    second = [
        entry("LocalAuthListCtrlr", "ItemsPerMessage", "100", mutability="ReadOnly"),
        entry(
            "SampledDataCtrlr",
            "TxUpdatedMeasurands",
            "Energy.Active.Import.Register,Current.Import",
        ),
        entry("SampledDataCtrlr", "TxUpdatedInterval", "60"),
        entry("OCPPCommCtrlr", "HeartbeatInterval", "300"),
        entry("ChargingStation", "PhaseRotation", "RST", mutability="ReadOnly"),
        entry("SecurityCtrlr", "BasicAuthPassword", "s3cret-not-shown"),
    ]
    third = [
        entry("EVSE", "Power", "0", evse=1, max_limit=22000, mutability="ReadOnly"),
        entry("EVSE", "SupplyPhases", "3", evse=1, mutability="ReadOnly"),
        entry("Connector", "ConnectorType", "cType2", evse=1, connector=1, mutability="ReadOnly"),
        entry("EVSE", "Power", "0", evse=2, max_limit=11000, mutability="ReadOnly"),
        entry("Connector", "ConnectorType", "cType2", evse=2, connector=1, mutability="ReadOnly"),
        entry("EVSE", "Available", "true", evse=2, mutability="ReadOnly"),
    ]
    at = "2026-12-07T10:00:00Z"
    return [
        {"requestId": 7, "generatedAt": at, "seqNo": 2, "tbc": False, "reportData": third},
        {"requestId": 7, "generatedAt": at, "seqNo": 0, "tbc": True, "reportData": first},
        {"requestId": 9, "generatedAt": at, "seqNo": 0, "tbc": False, "reportData": first[:1]},
        {"requestId": 7, "generatedAt": at, "seqNo": 1, "tbc": True, "reportData": second},
    ]


def schema() -> dict[str, Any]:
    path = resources.files("ocpp.v201") / "schemas" / "NotifyReportRequest.json"
    return dict(json.loads(path.read_text()))


def test_a_split_report_read_into_the_probes_summary() -> None:
    reports = station_reports()
    for report in reports:
        jsonschema.validate(report, schema())
    model = read_reports(reports, 7)
    assert model.complete and model.parts == 3 and model.skipped == 0
    summary = summarize_device_model(model)
    assert summary["smart_charging"] == {
        "supported": True,
        "enabled": True,
        "max_stack_level": 8,
        "rate_units": ["A", "W"],
        "max_periods": 24,
        "max_profiles": 20,
        "phase_switching": False,
    }
    assert summary["local_list"] == {
        "supported": True,  # Enabled reported: the controller exists
        "enabled": True,
        "max_length": 1000,
        "send_max_length": 100,
    }
    assert summary["meter_values"] == {
        "sampled_data": ["Energy.Active.Import.Register", "Current.Import"],
        "sample_interval_s": 60,
        "samples_current": True,
    }
    assert summary["evses"] == [
        {"evse": 1, "connectors": [1], "max_power_w": 22000.0, "supply_phases": 3},
        {"evse": 2, "connectors": [1], "max_power_w": 11000.0, "supply_phases": None},
    ]
    assert summary["connectors"] == 2 and summary["phase_rotation"] == "RST"
    assert summary["heartbeat_interval_s"] == 300
    assert missing_variables(model) == []
    listed = {r["variable"]: r for r in rows(model)}
    assert listed["EVSE@evse1.Power"]["max_limit"] == 22000
    assert listed["SmartChargingCtrlr.Entries[ChargingProfiles]"]["readonly"]
    assert listed["SecurityCtrlr.BasicAuthPassword"]["value"] == "(hidden)"
    assert "s3cret" not in json.dumps(rows(model))


def test_a_missing_part_or_bad_entries_are_said_not_raised() -> None:
    reports = station_reports()
    model = read_reports([r for r in reports if r["seqNo"] != 1], 7)
    assert not model.complete and model.parts == 2
    assert "SampledDataCtrlr.TxUpdatedMeasurands" in missing_variables(model)
    assert summarize_device_model(model)["meter_values"]["samples_current"] is None
    junk = {
        "requestId": 7,
        "seqNo": 0,
        "tbc": False,
        "reportData": [None, {"component": {}}, {"component": {"name": "X"}, "variable": 3}],
    }
    broken = read_reports([junk, {"requestId": 7, "seqNo": "1"}], 7)
    assert broken.complete and broken.skipped == 3 and broken.variables == ()
    assert summarize_device_model(broken)["smart_charging"]["supported"] is None
    assert summarize_device_model(read_reports([], 7))["report"] == {
        "parts": 0,
        "complete": False,
        "skipped": 0,
    }


def test_the_probe_of_a_201_station_reads_in_words() -> None:
    """What ``chargers probe`` prints for a 2.0.1 station's device model."""
    model = read_reports(station_reports(), 7)
    result = {
        "charger": "CS201",
        "vendor": "Acme",
        "model": "Wallbox 2",
        "serial": "SN-77",
        "firmware": "4.1",
        "ocpp_version": "ocpp2.0.1",
        **summarize_device_model(model),
        "missing_keys": missing_variables(model),
        "profile": {"fits": None, "match": None, "candidates": [], "configured": None},
        "proposed_profile": {"id": "acme-wallbox-2"},
        "site_folder": "/etc/edgegw/hardware/chargers",
    }
    text = _render_probe(result)
    assert "Device model:     OCPP 2.0.1, 3 report part(s), complete" in text
    assert "Feature profiles" not in text
    assert "Smart charging:   yes — stack levels 0..8, units A, W, 24 period(s)" in text
    assert "Local list:       yes — 1000 entries, 100 per SendLocalList" in text
    assert "Current.Import every 60 s" in text
    assert "    EVSE 1: connector(s) 1, up to 22 kW, 3 phase(s)" in text
    assert "    EVSE 2: connector(s) 1, up to 11 kW" in text
