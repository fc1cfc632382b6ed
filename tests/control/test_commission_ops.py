"""Probe, configure and commission a simulated charger through a real gateway.

The ops are registered on the gateway's control socket after it started, with their observer
added to the gateway's observers before the charger connects (what the daemon does at start).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from edgegw.commission.probe import match_profile, summarize_configuration
from edgegw.commission.run import SiteView
from edgegw.control import ControlClient
from edgegw.control.client import RemoteError
from edgegw.control.commission_ops import CommissionOps
from edgegw.control.protocol import ControlError, ErrorCode
from edgegw.daemon import Gateway
from edgegw.energy.chargermodels import load_model, load_models
from edgegw.energy.sampling import configuration_keys
from edgegw.sim.charger import ConfigKey, SimCharger
from edgegw.sim.meter import SimMeter
from edgegw.store.capabilities import CapabilityStore
from tests.conftest import GatewayFactory, gateway_url

MODELS = load_models(Path(__file__).resolve().parents[2] / "hardware" / "chargers")
CARD = "04A1B2C3"
FAST = {"step_timeout": 3.0, "tap_timeout": 5.0}


async def gateway_with_ops(
    make_gateway: GatewayFactory, **sections: Any
) -> tuple[CommissionOps, Gateway]:
    chargers = sections.pop("chargers", [{"id": "CP1", "idtag_format": "hex"}])
    gateway = await make_gateway(chargers=chargers, **sections)
    return install_ops(gateway), gateway


async def recorded_events(gateway: Gateway) -> list[tuple[float, str, str | None, str]]:
    """The events recorded so far: the journal's batch written first, when there is one."""
    journal = getattr(gateway, "journal", None)
    if journal is not None:
        await journal.flush()
    assert gateway.store is not None
    return await gateway.store.events()


def install_ops(gateway: Gateway) -> CommissionOps:
    """Commissioning ops as the daemon wires them (its socket has its own), over the test
    models and the daemon's commissioning observer (the one its event hub feeds)."""
    assert gateway.store is not None and gateway.journal is not None
    site = SiteView(
        lambda: gateway.config,
        gateway.sessions,
        controller=gateway.controller,
        authorizer=gateway.authorizer,
    )
    return CommissionOps(
        site,
        gateway._commission_observer,
        gateway.store,
        gateway.call,
        gateway.journal.event,
        models=MODELS,
    )


@asynccontextmanager
async def charger(gateway: Gateway, **kwargs: Any) -> AsyncIterator[SimCharger]:
    """A booted simulated charger (no StatusNotification or Heartbeat of its own)."""
    config = kwargs.pop("config", {})
    sim = SimCharger("CP1", gateway_url(gateway), **kwargs)
    sim.config.update(config)
    await sim.connect()
    try:
        await gateway.wait_charger("CP1")
        assert (await sim.boot())["status"] == "Accepted"
        yield sim
    finally:
        await sim.close()


def load_capping(meter: SimMeter) -> dict[str, Any]:
    return {
        "site": {"limit_a": 40},
        "buses": {"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        "meters": [{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
    }


def steps(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in report["steps"]}


# ------------------------------------------------------------------------------ probe


async def test_probe_reads_the_configuration_and_proposes_a_profile(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    async with charger(gateway, config={"AuthorizationKey": ConfigKey("secret-key-1234")}):
        result = await ops.probe({"charger": "CP1"})
    assert result["vendor"] == "edgegw-sim" and result["model"] == "SimCharger"
    assert "SmartCharging" in result["feature_profiles"]
    assert result["smart_charging"] == {
        "supported": True,
        "max_stack_level": 8,
        "rate_units": ["A", "W"],
        "rate_units_raw": "Current,Power",
        "max_periods": 24,
        "max_profiles": 16,
        "phase_switching": None,
    }
    assert result["local_list"]["max_length"] == 100
    assert result["meter_values"]["samples_current"] is True
    assert result["connectors"] == 2
    assert result["keys"]["AuthorizationKey"]["value"] == "***"  # never shown
    assert result["profile"]["fits"] is None  # no shipped model for the simulator
    proposed = result["proposed_profile"]
    assert proposed["id"] == "edgegw-sim-simcharger" and proposed["base"] == "generic-ocpp16"
    path = tmp_path / f"{proposed['id']}.toml"
    path.write_text(proposed["toml"])
    model = load_model(path)
    assert model.smart_charging.max_stack_level == 8 and model.smart_charging.max_profiles == 16
    assert any("probed from CP1" in note for note in model.notes)

    assert gateway.store is not None
    recorded = await CapabilityStore(gateway.store.db).probe("CP1")
    assert recorded is not None and recorded["smart_charging"]["max_stack_level"] == 8
    assert recorded["keys"]["AuthorizationKey"]["value"] == "***"
    # the local-list member of another part is not touched
    await CapabilityStore(gateway.store.db).set_commissioning("CP1", {"passed": True})
    assert await CapabilityStore(gateway.store.db).probe("CP1") == recorded


async def test_probe_says_which_shipped_profile_fits(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    async with charger(gateway, vendor="ABB", model="Terra AC W22-T-RD"):
        result = await ops.probe({"charger": "CP1", "profile_id": "abb-terra-ac-probed"})
    assert result["profile"]["fits"] == "abb-terra-ac" and result["profile"]["match"] == "product"
    # the simulator's keys disagree with what the shipped file says about ABB
    assert any("smart_charging.max_profiles" in d for d in result["profile"]["differences"])
    assert result["proposed_profile"]["id"] == "abb-terra-ac-probed"
    assert result["proposed_profile"]["base"] == "abb-terra-ac"


def test_profile_matching_rules() -> None:
    assert match_profile(MODELS, "KEBA", "KC-P30-EC2201B2-E00").model_id == "keba-p30"
    evbox = match_profile(MODELS, "EV-BOX", "Elvi")
    assert evbox.model_id is None  # the brand is written differently: nothing is guessed
    vendor_only = match_profile(MODELS, "Wallbox", "PLP1-0-2-4-9-002")
    assert (vendor_only.model_id, vendor_only.how) == ("wallbox-pulsar", "vendor")
    assert match_profile(MODELS, None, None).model_id is None


def test_configuration_summary_reads_nonstandard_units() -> None:
    keys = configuration_keys(
        {
            "configurationKey": [
                {"key": "ChargingScheduleAllowedChargingRateUnit", "value": "A", "readonly": True},
                {"key": "SupportedFeatureProfiles", "value": "Core"},
                {"key": "ConnectorPhaseRotation", "value": "0.RST,1.RST"},
            ]
        }
    )
    summary = summarize_configuration(keys)
    assert summary["smart_charging"]["rate_units"] == ["A"]
    assert summary["smart_charging"]["supported"] is False
    assert summary["phase_rotation"] == "0.RST,1.RST"
    assert keys["ChargingScheduleAllowedChargingRateUnit"].readonly


async def test_probe_of_a_charger_that_is_not_connected(make_gateway: GatewayFactory) -> None:
    ops, _gateway = await gateway_with_ops(make_gateway)
    with pytest.raises(ControlError) as offline:
        await ops.probe({"charger": "CP1"})
    assert offline.value.code is ErrorCode.UNAVAILABLE and "not connected" in offline.value.message
    with pytest.raises(ControlError) as unknown:
        await ops.probe({"charger": "NOPE"})
    assert unknown.value.code is ErrorCode.NOT_FOUND


# ------------------------------------------------------------------------------ configure


async def test_configure_adds_the_measurands_and_sets_the_interval(
    make_gateway: GatewayFactory,
) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    only_energy = ConfigKey("Energy.Active.Import.Register", kind="measurands")
    async with charger(gateway, config={"MeterValuesSampledData": only_energy}) as sim:
        result = await ops.configure({"charger": "CP1", "interval": 15})
        assert result["ok"] and result["samples_current"] and result["interval_s"] == 15
        keys = {k["key"]: k for k in result["keys"]}
        assert keys["MeterValuesSampledData"]["status"] == "Accepted"
        assert sim.config["MeterValuesSampledData"].value.split(",") == [
            "Energy.Active.Import.Register",
            "Current.Import",
            "Current.Offered",
            "Power.Active.Import",
        ]
        assert keys["MeterValueSampleInterval"]["status"] == "Accepted"
        assert sim.config["MeterValueSampleInterval"].value == "15"
        again = await ops.configure({"charger": "CP1", "interval": 15})
        assert [k["status"] for k in again["keys"]] == ["Unchanged", "Unchanged"]


async def test_configure_reports_what_the_charger_refuses(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    config = {
        "MeterValuesSampledData": ConfigKey(
            "Energy.Active.Import.Register", readonly=True, kind="measurands"
        ),
        "MeterValueSampleInterval": ConfigKey("60", readonly=True, kind="int"),
    }
    async with charger(gateway, config=config) as sim:
        result = await ops.configure({"charger": "CP1"})
    assert not result["ok"] and not result["samples_current"]
    keys = {k["key"]: k for k in result["keys"]}
    assert keys["MeterValuesSampledData"]["status"] == "Rejected"
    assert "read-only" in keys["MeterValuesSampledData"]["detail"]
    assert keys["MeterValueSampleInterval"]["status"] == "Rejected"
    assert not [a for a, _p in sim.received if a == "ChangeConfiguration"]


async def test_configure_within_the_charger_s_list_length(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    config = {
        "MeterValuesSampledData": ConfigKey("Energy.Active.Import.Register", kind="measurands"),
        "MeterValuesSampledDataMaxLength": ConfigKey("2", readonly=True, kind="int"),
    }
    async with charger(gateway, config=config) as sim:
        result = await ops.configure({"charger": "CP1"})
    sampled = result["keys"][0]
    assert sampled["status"] == "Accepted" and result["samples_current"]
    assert sim.config["MeterValuesSampledData"].value == (
        "Energy.Active.Import.Register,Current.Import"
    )
    assert "Current.Offered" in sampled["left_out"]


async def test_configure_without_a_sampled_data_key(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    async with charger(gateway) as sim:
        del sim.config["MeterValuesSampledData"]
        result = await ops.configure({"charger": "CP1"})
    assert result["keys"][0]["status"] == "NotSupported" and not result["ok"]


# ------------------------------------------------------------------------------ commission


async def test_every_step_passes_on_a_good_charger(make_gateway: GatewayFactory) -> None:
    _ops, gateway = await gateway_with_ops(make_gateway, auth={"unknown_cards": "accept"})
    async with charger(gateway) as sim:

        async def tap_when_asked() -> None:
            await sim.wait_call("ClearChargingProfile")  # the last call before the card step
            await sim.tap(CARD)

        socket = gateway.config.control.socket
        async with await ControlClient.connect(socket) as client, asyncio.TaskGroup() as group:
            group.create_task(tap_when_asked())
            report = await client.call("commission.run", charger="CP1", card=CARD, tap=True, **FAST)
        by_name = steps(report)
        assert report["passed"], by_name
        assert report["counts"] == {"pass": 9, "fail": 0, "skip": 0}
        assert "L1 0.0 A, L2 0.0 A, L3 0.0 A" in by_name["meter_values"]["detail"]
        assert "Accepted" in by_name["profile_accepted"]["detail"]
        assert "6.0 A now" in by_name["profile_honoured"]["detail"]
        assert sim.profiles == []  # the test profile is gone
        assert "Accepted by the gateway" in by_name["card"]["detail"]
        assert "Authorize Accepted" in by_name["card"]["detail"]
        assert report["charger_info"]["connectors"] == [1, 2]
        assert all(s["duration_s"] >= 0 for s in report["steps"])

    assert gateway.store is not None
    summary = await CapabilityStore(gateway.store.db).commissioning("CP1")
    assert summary is not None and summary["passed"] is True and summary["failed"] == []
    events = await recorded_events(gateway)
    assert any(kind == "commissioning" and "passed" in text for _at, kind, _c, text in events)


async def test_a_charger_that_ignores_profiles_fails_honoured(
    make_gateway: GatewayFactory,
) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    async with charger(gateway, ignore_profiles=True) as sim:
        report = await ops.commission({"charger": "CP1", **FAST})
        assert sim.profiles == []
    by_name = steps(report)
    assert not report["passed"]
    assert by_name["profile_accepted"]["status"] == "pass"
    honoured = by_name["profile_honoured"]
    assert honoured["status"] == "fail" and "32.0 A now, above the test limit" in honoured["detail"]
    assert "does not apply it" in honoured["detail"] and honoured["hint"]
    assert by_name["profile_removed"]["status"] == "pass"
    assert by_name["card"]["status"] == "skip"
    failed = [s["name"] for s in report["steps"] if s["status"] == "fail"]
    assert failed == ["profile_honoured"]


async def test_a_charger_that_refuses_profiles(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    # The generic model sends stack level 1; this charger allows 0 only, so it refuses.
    stack_zero = ConfigKey("0", readonly=True, kind="int")
    async with charger(gateway, config={"ChargeProfileMaxStackLevel": stack_zero}) as sim:
        report = await ops.commission({"charger": "CP1", **FAST})
        assert sim.profiles == []
    by_name = steps(report)
    accepted = by_name["profile_accepted"]
    assert accepted["status"] == "fail" and accepted["detail"].endswith(": Rejected")
    assert "edgegw chargers probe CP1" in (accepted["hint"] or "")
    assert by_name["profile_honoured"]["status"] == "skip"
    assert by_name["profile_removed"]["detail"] == "nothing to remove"


async def test_meter_values_without_current_fail_with_a_hint(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(make_gateway)
    sampled = ConfigKey("Energy.Active.Import.Register", readonly=True, kind="measurands")
    async with charger(gateway, config={"MeterValuesSampledData": sampled}):
        report = await ops.commission({"charger": "CP1", **FAST})
    meter = steps(report)["meter_values"]
    assert meter["status"] == "fail" and "no Current.Import" in meter["detail"]
    assert "edgegw chargers configure CP1" in (meter["hint"] or "")


async def test_a_single_phase_charger_needs_one_phase(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(
        make_gateway, chargers=[{"id": "CP1", "idtag_format": "hex", "phases": "L2"}]
    )
    async with charger(gateway, phases=1, connectors=1):
        report = await ops.commission({"charger": "CP1", **FAST})
    assert steps(report)["meter_values"]["status"] == "pass", steps(report)["meter_values"]


async def test_a_refused_card_and_a_missed_tap_fail(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(make_gateway, auth={"unknown_cards": "reject"})
    async with charger(gateway, connectors=1):
        report = await ops.commission(
            {"charger": "CP1", "card": CARD, "tap": True, "step_timeout": 3.0, "tap_timeout": 0.2}
        )
    card = steps(report)["card"]
    assert card["status"] == "fail"
    assert "Invalid by the gateway" in card["detail"] and "nobody tapped" in card["detail"]


async def test_unknown_card_format_is_not_guessed(make_gateway: GatewayFactory) -> None:
    ops, gateway = await gateway_with_ops(make_gateway, chargers=[{"id": "CP1"}])
    async with charger(gateway, connectors=1):
        report = await ops.commission({"charger": "CP1", "card": CARD, **FAST})
    card = steps(report)["card"]
    assert card["status"] == "pass" and "not decided locally" in card["detail"]
    assert gateway.authorizer is not None
    assert gateway.authorizer.detected_format("CP1") is None  # nothing learned from typing


async def test_a_charger_that_is_not_connected(make_gateway: GatewayFactory) -> None:
    ops, _gateway = await gateway_with_ops(make_gateway)
    report = await ops.commission({"charger": "CP1", **FAST})
    by_name = steps(report)
    assert not report["passed"]
    assert (
        by_name["connected"]["status"] == "fail"
        and "never connected" in (by_name["connected"]["detail"])
    )
    assert {s["status"] for n, s in by_name.items() if n != "connected"} == {"skip"}
    with pytest.raises(ControlError) as unknown:
        await ops.commission({"charger": "NOPE"})
    assert unknown.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(ControlError) as bad:
        await ops.commission({"charger": "CP1", "card": "12345"})
    assert bad.value.code is ErrorCode.BAD_ARGS


async def test_with_load_capping_the_controller_s_cap_is_checked(
    make_gateway: GatewayFactory,
) -> None:
    async with SimMeter("eastron-sdm630") as meter:
        ops, gateway = await gateway_with_ops(
            make_gateway,
            chargers=[{"id": "CP1", "idtag_format": "hex", "fallback_current_a": 8}],
            **load_capping(meter),
        )
        assert gateway.controller is not None
        async with charger(gateway, connectors=1) as sim:
            report = await ops.commission({"charger": "CP1", **FAST})
            # the controller's cap is still there; no profile of the commissioning was sent
            assert sim.profiles and all(p.profile_id % 1000 != 999 for p in sim.profiles)
    by_name = steps(report)
    assert by_name["profile_accepted"]["status"] == "pass", by_name["profile_accepted"]
    assert "load controller" in by_name["profile_accepted"]["detail"]
    assert by_name["profile_honoured"]["status"] == "pass", by_name["profile_honoured"]
    assert "8.0 A now" in by_name["profile_honoured"]["detail"]
    assert by_name["profile_removed"]["status"] == "skip"


async def test_an_idle_charger_under_a_0_a_cap_is_not_tested_rather_than_passed(
    make_gateway: GatewayFactory,
) -> None:
    async with SimMeter("eastron-sdm630") as meter:
        ops, gateway = await gateway_with_ops(
            make_gateway, chargers=[{"id": "CP1", "idtag_format": "hex"}], **load_capping(meter)
        )
        async with charger(gateway, connectors=1):
            report = await ops.commission({"charger": "CP1", **FAST})
    by_name = steps(report)
    assert by_name["profile_accepted"]["status"] == "pass", by_name["profile_accepted"]
    honoured = by_name["profile_honoured"]
    assert honoured["status"] == "skip", honoured
    assert honoured["detail"].startswith("not tested: no car drawing")
    assert "0.0 A now" not in honoured["detail"]


async def test_with_load_capping_a_charger_ignoring_its_cap_fails(
    make_gateway: GatewayFactory,
) -> None:
    async with SimMeter("eastron-sdm630") as meter:
        ops, gateway = await gateway_with_ops(make_gateway, **load_capping(meter))
        async with charger(gateway, connectors=1, ignore_profiles=True):
            report = await ops.commission({"charger": "CP1", **FAST})
    honoured = steps(report)["profile_honoured"]
    assert honoured["status"] == "fail" and "above the controller's limit" in honoured["detail"]


async def test_the_ops_answer_on_the_control_socket(make_gateway: GatewayFactory) -> None:
    _ops, gateway = await gateway_with_ops(make_gateway)
    socket = gateway.config.control.socket
    async with await ControlClient.connect(socket) as client:
        with pytest.raises(RemoteError) as offline:
            await client.call("chargers.configure", charger="CP1")
        assert offline.value.code == "unavailable"
        with pytest.raises(RemoteError) as bad:
            await client.call("chargers.configure", charger="CP1", interval=0)
        assert bad.value.code == "bad_args" and "interval" in bad.value.message
