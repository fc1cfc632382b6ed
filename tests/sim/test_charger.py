"""SimCharger answering a CSMS (SimCloud, directly over a real socket) and SimFleet."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from edgegw.sim import SimCallError
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import CloudRecord, SimCloud
from edgegw.sim.fleet import SimFleet

TAG = "AA11BB22"
START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def incoming(action: str, **fields: Any) -> Callable[[CloudRecord], bool]:
    """Predicate: a CALL ``action`` the cloud received whose payload has ``fields``."""

    def predicate(r: CloudRecord) -> bool:
        return (
            r.direction == "in"
            and r.message_type == 2
            and r.action == action
            and all(r.payload.get(k) == v for k, v in fields.items())
        )

    return predicate


def profile(
    purpose: str,
    limit: float,
    *,
    unit: str = "A",
    profile_id: int = 1,
    stack_level: int = 0,
    periods: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": "2023-11-14T22:00:00Z",
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods or [{"startPeriod": 0, "limit": limit}],
        },
        **extra,
    }


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={TAG, "CAFE0001"}) as sim:
        yield sim


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def charger(cloud: SimCloud, clock: FakeClock) -> AsyncIterator[SimCharger]:
    async with SimCharger("CP-1", cloud.url, clock=clock) as sim:
        await cloud.wait_connected("CP-1")
        await sim.boot()
        yield sim


async def test_remote_start_and_remote_stop(cloud: SimCloud, charger: SimCharger) -> None:
    answer = await cloud.call("CP-1", "RemoteStartTransaction", {"idTag": TAG, "connectorId": 2})
    assert answer == {"status": "Accepted"}
    start = await cloud.wait_for(incoming("StartTransaction", connectorId=2, idTag=TAG))
    await cloud.wait_for(incoming("StatusNotification", connectorId=2, status="Charging"))
    session = charger.session(2)
    assert session is not None
    assert session.transaction_id == 1
    # The answer reached the cloud before the StartTransaction it caused.
    answered = cloud.find("RemoteStartTransaction", direction="in", message_type=3)[0]
    assert cloud.records.index(answered) < cloud.records.index(start)

    busy = await cloud.call("CP-1", "RemoteStartTransaction", {"idTag": TAG, "connectorId": 2})
    assert busy == {"status": "Rejected"}
    unknown = await cloud.call("CP-1", "RemoteStopTransaction", {"transactionId": 99})
    assert unknown == {"status": "Rejected"}

    stop = await cloud.call("CP-1", "RemoteStopTransaction", {"transactionId": 1})
    assert stop == {"status": "Accepted"}
    await cloud.wait_for(incoming("StopTransaction", transactionId=1, reason="Remote"))
    await cloud.wait_for(incoming("StatusNotification", connectorId=2, status="Available"))
    assert charger.session(2) is None
    assert charger.received[0] == ("RemoteStartTransaction", {"idTag": TAG, "connectorId": 2})


async def test_remote_start_without_connector_takes_a_free_one_and_applies_its_profile(
    cloud: SimCloud, charger: SimCharger
) -> None:
    await charger.tap(TAG, 1)
    tx_profile = profile("TxProfile", 8.0)
    answer = await cloud.call(
        "CP-1", "RemoteStartTransaction", {"idTag": "CAFE0001", "chargingProfile": tx_profile}
    )
    assert answer == {"status": "Accepted"}
    await cloud.wait_for(incoming("StatusNotification", connectorId=2, status="Charging"))
    assert charger.current_a(2) == 8.0
    assert charger.current_a(1) == 16.0
    wrong_purpose = profile("TxDefaultProfile", 8.0)
    answer = await cloud.call(
        "CP-1", "RemoteStartTransaction", {"idTag": TAG, "chargingProfile": wrong_purpose}
    )
    assert answer == {"status": "Rejected"}


async def test_draw_follows_charging_profiles(
    cloud: SimCloud, charger: SimCharger, clock: FakeClock
) -> None:
    tx = await charger.tap(TAG, 1)
    assert charger.current_a(1) == 16.0  # the car's own maximum, no profile yet

    async def set_profile(connector: int, body: dict[str, Any]) -> str:
        answer = await cloud.call(
            "CP-1", "SetChargingProfile", {"connectorId": connector, "csChargingProfiles": body}
        )
        return str(answer["status"])

    assert await set_profile(0, profile("TxDefaultProfile", 10.0)) == "Accepted"
    assert charger.current_a(1) == 10.0
    assert charger.power_w(1) == 10.0 * 230 * 3
    clock.now += 3600
    await charger.meter_values(1)
    sample = cloud.find("MeterValues", direction="in")[-1].payload["meterValue"][0]
    currents = {
        v["phase"]: v["value"] for v in sample["sampledValue"] if v["measurand"] == "Current.Import"
    }
    assert currents == {"L1": "10.0", "L2": "10.0", "L3": "10.0"}
    assert charger.energy_wh(1) == pytest.approx(6900.0)

    # W are converted at 230 V per phase: 4140 W / (230 V x 3) = 6 A.
    assert await set_profile(1, profile("TxProfile", 4140, unit="W", profile_id=2)) == "Accepted"
    assert charger.current_a(1) == pytest.approx(6.0)
    # The lowest applicable limit wins: a ChargePointMaxProfile below the TxProfile.
    cp_max = profile("ChargePointMaxProfile", 5.0, profile_id=3)
    assert await set_profile(0, cp_max) == "Accepted"
    assert charger.current_a(1) == 5.0
    assert charger.offered_a(1) == 5.0
    # ...shared by the sessions running on the charger.
    assert await set_profile(0, profile("ChargePointMaxProfile", 20.0, profile_id=3)) == "Accepted"
    await charger.tap("CAFE0001", 2)
    assert charger.current_a(2) == 10.0  # 20 A shared by two sessions; no TxProfile on 2
    assert charger.current_a(1) == pytest.approx(6.0)

    # A 0 A limit pauses the session and the charger says so.
    assert (
        await set_profile(1, profile("TxProfile", 0.0, profile_id=2, stack_level=0)) == "Accepted"
    )
    assert charger.current_a(1) == 0.0
    await cloud.wait_for(incoming("StatusNotification", connectorId=1, status="SuspendedEVSE"))

    cleared = await cloud.call(
        "CP-1", "ClearChargingProfile", {"chargingProfilePurpose": "TxProfile"}
    )
    assert cleared == {"status": "Accepted"}
    assert charger.current_a(1) == 10.0  # back to TxDefaultProfile (and the shared 20 A)
    await cloud.wait_for(incoming("StatusNotification", connectorId=1, status="Charging"))
    nothing = await cloud.call("CP-1", "ClearChargingProfile", {"id": 999})
    assert nothing == {"status": "Unknown"}
    assert tx == 1


async def test_profile_periods_and_stack_levels(
    cloud: SimCloud, charger: SimCharger, clock: FakeClock
) -> None:
    await charger.tap(TAG, 1)
    stepped = profile(
        "TxDefaultProfile",
        0,
        periods=[{"startPeriod": 0, "limit": 12.0}, {"startPeriod": 1800, "limit": 7.0}],
    )
    await cloud.call(
        "CP-1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": stepped}
    )
    # The schedule started at 22:00, the clock is at 22:13:20: first period.
    assert charger.current_a(1) == 12.0
    ahead = await cloud.call("CP-1", "GetCompositeSchedule", {"connectorId": 1, "duration": 3600})
    assert ahead["chargingSchedule"]["chargingRateUnit"] == "A"
    assert ahead["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 12.0},
        {"startPeriod": 1000, "limit": 7.0},  # 22:30:00
    ]
    clock.now += 1000  # 22:30:00 -> second period
    assert charger.current_a(1) == 7.0
    higher = profile("TxDefaultProfile", 9.0, profile_id=5, stack_level=3)
    await cloud.call("CP-1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": higher})
    assert charger.current_a(1) == 9.0

    composite = await cloud.call(
        "CP-1", "GetCompositeSchedule", {"connectorId": 1, "duration": 600, "chargingRateUnit": "W"}
    )
    assert composite["status"] == "Accepted"
    assert composite["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 9.0 * 230 * 3}
    ]


async def test_a_single_phase_charger_reports_l1_only_drawing(
    cloud: SimCloud, clock: FakeClock
) -> None:
    async with SimCharger("CP-1P", cloud.url, clock=clock, phases=1, car_current_a=20.0) as one:
        await one.tap(TAG, 1)
        clock.now += 3600
        await one.meter_values(1)
    sample = cloud.find("MeterValues", direction="in")[0].payload["meterValue"][0]
    values = {(v["measurand"], v.get("phase")): v["value"] for v in sample["sampledValue"]}
    assert values[("Current.Import", "L1")] == "20.0"
    assert values[("Current.Import", "L2")] == "0.0"
    assert values[("Current.Import", "L3")] == "0.0"
    assert values[("Power.Active.Import", None)] == "4600.0"
    assert values[("Energy.Active.Import.Register", None)] == "4600"


async def test_set_charging_profile_rejections(cloud: SimCloud, charger: SimCharger) -> None:
    async def status_of(connector: int, body: dict[str, Any]) -> str:
        answer = await cloud.call(
            "CP-1", "SetChargingProfile", {"connectorId": connector, "csChargingProfiles": body}
        )
        return str(answer["status"])

    assert await status_of(1, profile("TxProfile", 6.0)) == "Rejected"  # no transaction
    assert await status_of(1, profile("ChargePointMaxProfile", 6.0)) == "Rejected"  # not on 0
    assert await status_of(0, profile("TxDefaultProfile", 6.0, stack_level=99)) == "Rejected"
    await charger.tap(TAG, 1)
    assert await status_of(1, profile("TxProfile", 6.0, transactionId=42)) == "Rejected"
    assert await status_of(1, profile("TxProfile", 6.0, transactionId=1)) == "Accepted"
    await charger.end_session(1)
    assert charger.profiles == []  # a TxProfile ends with its transaction


async def test_a_charger_that_ignores_profiles(cloud: SimCloud, clock: FakeClock) -> None:
    async with SimCharger("CP-2", cloud.url, clock=clock, ignore_profiles=True) as stubborn:
        await stubborn.tap(TAG, 1)
        answer = await cloud.call(
            "CP-2",
            "SetChargingProfile",
            {"connectorId": 0, "csChargingProfiles": profile("TxDefaultProfile", 6.0)},
        )
        assert answer == {"status": "Accepted"}
        assert len(stubborn.profiles) == 1
        assert stubborn.current_a(1) == 16.0


async def test_configuration_keys(cloud: SimCloud, charger: SimCharger) -> None:
    everything = await cloud.call("CP-1", "GetConfiguration", {})
    keys = {k["key"]: k for k in everything["configurationKey"]}
    for key in (
        "MeterValueSampleInterval",
        "MeterValuesSampledData",
        "HeartbeatInterval",
        "SupportedFeatureProfiles",
        "ChargeProfileMaxStackLevel",
        "ChargingScheduleAllowedChargingRateUnit",
        "LocalAuthListMaxLength",
    ):
        assert key in keys
    assert keys["SupportedFeatureProfiles"]["readonly"] is True
    some = await cloud.call("CP-1", "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
    assert some["configurationKey"] == [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
    ]
    assert some["unknownKey"] == ["Nope"]

    async def change(key: str, value: str) -> str:
        answer = await cloud.call("CP-1", "ChangeConfiguration", {"key": key, "value": value})
        return str(answer["status"])

    assert await change("MeterValueSampleInterval", "15") == "Accepted"
    assert await change("MeterValueSampleInterval", "soon") == "Rejected"
    assert await change("NumberOfConnectors", "4") == "Rejected"
    assert await change("Nope", "1") == "NotSupported"
    assert await change("MeterValuesSampledData", "Energy.Active.Import.Register,SoC") == "Rejected"
    assert await change("MeterValuesSampledData", "Energy.Active.Import.Register") == "Accepted"
    assert charger.config["MeterValueSampleInterval"].value == "15"
    await charger.meter_values(1)
    sample = cloud.find("MeterValues", direction="in")[-1].payload["meterValue"][0]
    assert [v["measurand"] for v in sample["sampledValue"]] == ["Energy.Active.Import.Register"]


async def test_trigger_message_is_sent_after_the_answer(
    cloud: SimCloud, charger: SimCharger
) -> None:
    answer = await cloud.call(
        "CP-1", "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 2}
    )
    assert answer == {"status": "Accepted"}
    status = await cloud.wait_for(incoming("StatusNotification", connectorId=2))
    answered = cloud.find("TriggerMessage", direction="in", message_type=3)[0]
    assert cloud.records.index(answered) < cloud.records.index(status)

    await cloud.call(
        "CP-1", "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1}
    )
    meter = await cloud.wait_for(incoming("MeterValues", connectorId=1))
    assert meter.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    await cloud.call("CP-1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
    await cloud.wait_for(incoming("Heartbeat"))
    bad = await cloud.call(
        "CP-1", "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 7}
    )
    assert bad == {"status": "Rejected"}


async def test_local_list_and_cache(cloud: SimCloud, charger: SimCharger) -> None:
    full = {
        "listVersion": 3,
        "updateType": "Full",
        "localAuthorizationList": [
            {"idTag": "AA11BB22", "idTagInfo": {"status": "Accepted"}},
            {"idTag": "DEAD", "idTagInfo": {"status": "Blocked"}},
        ],
    }
    assert await cloud.call("CP-1", "SendLocalList", full) == {"status": "Accepted"}
    assert await cloud.call("CP-1", "GetLocalListVersion", {}) == {"listVersion": 3}
    stale = {"listVersion": 3, "updateType": "Differential", "localAuthorizationList": []}
    assert await cloud.call("CP-1", "SendLocalList", stale) == {"status": "VersionMismatch"}
    diff = {
        "listVersion": 4,
        "updateType": "Differential",
        "localAuthorizationList": [
            {"idTag": "dead"},
            {"idTag": "BEEF", "idTagInfo": {"status": "Accepted"}},
        ],
    }
    assert await cloud.call("CP-1", "SendLocalList", diff) == {"status": "Accepted"}
    assert set(charger.local_list) == {"aa11bb22", "beef"}
    assert charger.local_list_version == 4

    await charger.authorize(TAG)
    assert charger.auth_cache
    assert await cloud.call("CP-1", "ClearCache", {}) == {"status": "Accepted"}
    assert charger.auth_cache == {}


async def test_soft_reset_stops_sessions_and_reboots(cloud: SimCloud, charger: SimCharger) -> None:
    await charger.tap(TAG, 1)
    assert await cloud.call("CP-1", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
    await cloud.wait_for(incoming("StopTransaction", transactionId=1, reason="SoftReset"))
    await cloud.wait_for(lambda r: len(cloud.find("BootNotification", direction="in")) == 2)
    await cloud.wait_for(incoming("StatusNotification", connectorId=2, status="Available"))
    assert charger.session(1) is None


async def test_reservations_unlock_and_availability(cloud: SimCloud, charger: SimCharger) -> None:
    reserve = {
        "connectorId": 1,
        "expiryDate": "2030-01-01T00:00:00Z",
        "idTag": TAG,
        "reservationId": 7,
    }
    assert await cloud.call("CP-1", "ReserveNow", reserve) == {"status": "Accepted"}
    await cloud.wait_for(incoming("StatusNotification", connectorId=1, status="Reserved"))
    assert await charger.tap("CAFE0001", 1) is None  # reserved for someone else
    assert await charger.tap(TAG, 1) == 1
    assert cloud.find("StartTransaction", direction="in")[0].payload["reservationId"] == 7
    other = {**reserve, "connectorId": 2, "reservationId": 8}
    assert await cloud.call("CP-1", "ReserveNow", other) == {"status": "Accepted"}
    assert await cloud.call("CP-1", "CancelReservation", {"reservationId": 8}) == {
        "status": "Accepted"
    }
    assert await cloud.call("CP-1", "CancelReservation", {"reservationId": 8}) == {
        "status": "Rejected"
    }

    busy = await cloud.call("CP-1", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert busy == {"status": "Scheduled"}  # connector 1 is charging; 2 goes at once
    await cloud.wait_for(incoming("StatusNotification", connectorId=2, status="Unavailable"))
    assert await cloud.call("CP-1", "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    await cloud.wait_for(incoming("StopTransaction", reason="UnlockCommand"))
    await cloud.wait_for(incoming("StatusNotification", connectorId=1, status="Unavailable"))
    assert not charger.is_free(1)
    assert await charger.tap(TAG, 1) is None


async def test_diagnostics_firmware_and_data_transfer(cloud: SimCloud, charger: SimCharger) -> None:
    diag = await cloud.call("CP-1", "GetDiagnostics", {"location": "ftp://example.invalid/"})
    assert diag == {"fileName": "CP-1-diagnostics.log"}
    await cloud.wait_for(incoming("DiagnosticsStatusNotification", status="Uploaded"))
    update = {"location": "https://example.invalid/fw.bin", "retrieveDate": "2023-11-14T22:00:00Z"}
    assert await cloud.call("CP-1", "UpdateFirmware", update) == {}
    await cloud.wait_for(incoming("FirmwareStatusNotification", status="Installed"))
    states = [r.payload["status"] for r in cloud.find("FirmwareStatusNotification", direction="in")]
    assert states == ["Downloading", "Downloaded", "Installing", "Installed"]
    echo = await cloud.call("CP-1", "DataTransfer", {"vendorId": "edgegw", "data": "x"})
    assert echo == {"status": "Accepted", "data": "x"}
    assert (await charger.wait_call("DataTransfer")) == {"vendorId": "edgegw", "data": "x"}


async def test_unhandled_and_malformed_calls_get_callerrors(
    cloud: SimCloud, charger: SimCharger
) -> None:
    with pytest.raises(SimCallError) as unhandled:
        await cloud.call("CP-1", "CertificateSigned", {"certificateChain": "x"})
    assert unhandled.value.code == "NotImplemented"
    with pytest.raises(SimCallError) as malformed:
        await cloud.call("CP-1", "Reset", {"type": "Sideways"}, validate=False)
    assert malformed.value.code in {
        "FormationViolation",
        "FormatViolation",
        "PropertyConstraintViolation",
    }
    wire = json.loads(cloud.find("Reset", direction="in", message_type=4)[0].raw)
    assert wire[0] == 4


async def test_run_session_sends_the_samples_and_stops(
    cloud: SimCloud, charger: SimCharger
) -> None:
    tx = await charger.run_session(TAG, 2, meter_interval=0.001, samples=3)
    assert tx == 1
    assert len(cloud.transactions[("CP-1", 1)].meter_values) == 3
    assert cloud.transactions[("CP-1", 1)].stopped
    assert await charger.run_session("0000", 2, meter_interval=0.001, samples=3) is None


def from_charger(charger_id: str, action: str) -> Callable[[CloudRecord], bool]:
    return lambda r: r.charger_id == charger_id and incoming(action)(r)


def refused_authorize(r: CloudRecord) -> bool:
    return (
        r.action == "Authorize"
        and r.direction == "out"
        and r.payload["idTagInfo"]["status"] == "Invalid"
    )


async def test_fleet_runs_sessions_and_survives_a_cloud_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgegw.sim")
    async with SimCloud(accepted_tags={TAG}) as cloud:
        fleet = SimFleet(
            cloud.url,
            ["F-1", "F-2"],
            tags=[TAG, "0000"],
            session_seconds=0.1,
            meter_interval=0.03,
            heartbeat_interval=0.05,
            seed=7,
        )
        async with fleet:
            await fleet.wait_until(lambda s: s.sessions_completed >= 2 and s.sessions_refused >= 1)
            for cid in ("F-1", "F-2"):
                await cloud.wait_for(from_charger(cid, "StatusNotification"))
            await cloud.wait_for(refused_authorize)
            await cloud.wait_for(incoming("Heartbeat"))

            await cloud.stop()  # an outage: every charger comes back and boots again
            boots = len(cloud.find("BootNotification", direction="in"))
            await cloud.start()
            for cid in ("F-1", "F-2"):
                await cloud.wait_connected(cid)
            await cloud.wait_for(
                lambda r: len(cloud.find("BootNotification", direction="in")) >= boots + 2
            )
        stats = fleet.stats
    assert stats.sessions_started >= 2
    assert stats.sessions_completed >= 2
    assert stats.sessions_refused >= 1
    assert stats.disconnects >= 2
    assert stats.messages_sent > 10
    assert any("started (tag AA11BB22)" in m for m in caplog.messages)
    assert any("Wh delivered" in m for m in caplog.messages)
    assert not fleet.chargers["F-1"].connected
