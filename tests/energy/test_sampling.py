"""Meter-value sampling: each charger is asked for per-phase currents when it connects.

The logic is checked against a scripted charger (answers from a table, every call recorded);
the end-to-end tests run a real gateway with simulated chargers over real websockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgegw.config import Config, parse_config
from edgegw.energy.chargermodels import ChargerModel, MeterValues, load_models
from edgegw.energy.sampling import (
    MAX_LENGTH,
    SAMPLE_INTERVAL,
    SAMPLED_DATA,
    MeterSampling,
    sample_interval_for,
)
from edgegw.ocpp.events import ChargerConnected, ChargerDisconnected
from edgegw.sim.charger import ConfigKey, SimCharger
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url

MODELS = load_models(Path(__file__).resolve().parents[2] / "hardware" / "chargers")
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
JsonDict = dict[str, Any]


def site_config(control_interval: float = 1.0, **charger: Any) -> Config:
    return parse_config(
        {
            "chargers": [{"id": "CP1", **charger}],
            "site": {"limit_a": 63, "control_interval": control_interval},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": "eastron-sdm630"}],
        }
    )


@dataclass
class ScriptedCharger:
    """Answers GetConfiguration from ``keys`` (value, readonly) and ChangeConfiguration with
    ``decide(key, value)``; an accepted change is stored. ``fail`` raises instead."""

    keys: dict[str, tuple[str, bool]]
    decide: Callable[[str, str], str] = lambda _k, _v: "Accepted"
    fail: int = 0
    calls: list[tuple[str, JsonDict]] = field(default_factory=list)

    async def __call__(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        self.calls.append((action, payload))
        if self.fail:
            self.fail -= 1
            raise TimeoutError("no answer")
        if action == "GetConfiguration":
            wanted = payload.get("key") or list(self.keys)
            return {
                "configurationKey": [
                    {"key": k, "value": self.keys[k][0], "readonly": self.keys[k][1]}
                    for k in wanted
                    if k in self.keys
                ],
                "unknownKey": [k for k in wanted if k not in self.keys],
            }
        assert action == "ChangeConfiguration", action
        key, value = payload["key"], payload["value"]
        status = self.decide(key, value) if key in self.keys else "NotSupported"
        if status in ("Accepted", "RebootRequired"):
            self.keys[key] = (value, self.keys[key][1])
        return {"status": status}

    def changes(self) -> list[tuple[str, str]]:
        return [(p["key"], p["value"]) for a, p in self.calls if a == "ChangeConfiguration"]


@dataclass
class Events:
    recorded: list[tuple[str, str, str | None, dict[str, Any] | None]] = field(default_factory=list)

    async def __call__(
        self,
        kind: str,
        message: str,
        *,
        charger_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.recorded.append((kind, message, charger_id, data))


async def configure(
    charger: ScriptedCharger,
    *,
    config: Config | None = None,
    models: dict[str, ChargerModel] | None = None,
    events: Events | None = None,
    retry_delays_s: tuple[float, ...] = (0.01,),
) -> MeterSampling:
    sampling = MeterSampling(
        config or site_config(),
        models or MODELS,
        charger,
        record_event=events,
        retry_delays_s=retry_delays_s,
    )
    sampling.handle(ChargerConnected(charger_id="CP1", at=0.0))
    await sampling.wait_configured("CP1", timeout=5)
    return sampling


# ------------------------------------------------------------------------------------------
# The logic, against a scripted charger


async def test_adds_currents_keeps_the_cloud_measurands_and_sets_the_interval() -> None:
    charger = ScriptedCharger(
        {SAMPLED_DATA: (f"{ENERGY}, Power.Active.Import", False), SAMPLE_INTERVAL: ("0", False)}
    )
    sampling = await configure(charger)
    assert charger.calls[0] == (
        "GetConfiguration",
        {"key": [SAMPLED_DATA, SAMPLE_INTERVAL, MAX_LENGTH]},
    )
    wanted = f"{ENERGY},Power.Active.Import,Current.Import,Current.Offered"
    assert charger.changes() == [(SAMPLED_DATA, wanted), (SAMPLE_INTERVAL, "10")]
    result = sampling.results["CP1"]
    assert result.samples_currents and result.interval_s == 10 and not result.refused
    await sampling.close()


async def test_nothing_is_changed_when_the_charger_already_samples_enough() -> None:
    charger = ScriptedCharger(
        {
            SAMPLED_DATA: (f"Current.Offered,{ENERGY},Current.Import,Power.Active.Import", False),
            SAMPLE_INTERVAL: ("5", False),
        }
    )
    sampling = await configure(charger)
    assert charger.changes() == []  # a faster interval (the cloud's choice) is kept
    assert sampling.results["CP1"].interval_s == 5
    await sampling.close()


async def test_a_refused_list_drops_the_least_needed_measurand_first() -> None:
    def no_offered(key: str, value: str) -> str:
        return "Rejected" if "Current.Offered" in value else "Accepted"

    events = Events()
    charger = ScriptedCharger(
        {SAMPLED_DATA: (ENERGY, False), SAMPLE_INTERVAL: ("60", False)}, no_offered
    )
    sampling = await configure(charger, events=events)
    assert charger.changes() == [
        (SAMPLED_DATA, f"{ENERGY},Current.Import,{POWER},Current.Offered"),
        (SAMPLED_DATA, f"{ENERGY},Current.Import,{POWER}"),
        (SAMPLE_INTERVAL, "10"),
    ]
    result = sampling.results["CP1"]
    assert result.measurands == (ENERGY, "Current.Import", POWER) and result.samples_currents
    assert result.refused == {SAMPLED_DATA: "Current.Offered: not taken"}
    ((kind, message, who, data),) = events.recorded
    assert (kind, who) == ("meter_sampling", "CP1")
    assert "Current.Offered: not taken" in message
    assert "load capping still sees its cars' currents" in message
    assert data is not None and data["measurands"] == [ENERGY, "Current.Import", POWER]
    await sampling.close()


async def test_down_to_current_import_alone_when_nothing_else_is_taken() -> None:
    def currents_only(key: str, value: str) -> str:
        return "Accepted" if value == f"{ENERGY},Current.Import" else "Rejected"

    charger = ScriptedCharger(
        {SAMPLED_DATA: (ENERGY, False), SAMPLE_INTERVAL: ("10", False)}, currents_only
    )
    sampling = await configure(charger)
    assert [value for _, value in charger.changes()] == [
        f"{ENERGY},Current.Import,{POWER},Current.Offered",
        f"{ENERGY},Current.Import,{POWER}",
        f"{ENERGY},Current.Import",
    ]
    result = sampling.results["CP1"]
    assert result.measurands == (ENERGY, "Current.Import") and result.samples_currents
    assert result.refused == {SAMPLED_DATA: f"{POWER}, Current.Offered: not taken"}
    await sampling.close()


async def test_power_is_asked_of_a_model_that_lists_it_and_never_beyond_its_list() -> None:
    """The ABB Terra AC's catalogue entry lists what it samples (its firmware <= 1.8.21
    reboots when asked for more): Power.Active.Import is added, Current.Offered never."""
    charger = ScriptedCharger({SAMPLED_DATA: (ENERGY, False), SAMPLE_INTERVAL: ("10", False)})
    sampling = await configure(charger, config=site_config(model="abb-terra-ac"))
    assert charger.changes() == [(SAMPLED_DATA, f"{ENERGY},Current.Import,{POWER}")]
    assert not sampling.results["CP1"].refused  # what it cannot sample is not a refusal
    await sampling.close()


async def test_refusals_are_recorded_once_and_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = Events()
    charger = ScriptedCharger(
        {SAMPLED_DATA: (ENERGY, False), SAMPLE_INTERVAL: ("60", True)},
        lambda _k, _v: "Rejected",
    )
    caplog.set_level(logging.WARNING, "edgegw.energy.sampling")
    sampling = await configure(charger, events=events)
    result = sampling.results["CP1"]
    assert result.measurands == (ENERGY,) and not result.samples_currents
    assert result.refused == {SAMPLED_DATA: "answered Rejected", SAMPLE_INTERVAL: "read-only"}
    assert (SAMPLE_INTERVAL, "10") not in charger.changes()  # read-only: not even tried
    # The charger reconnects: same refusals, not reported again.
    sampling.handle(ChargerConnected(charger_id="CP1", at=0.0))
    await sampling.wait_configured("CP1", timeout=5)
    assert len(events.recorded) == 1
    assert "its cars count at their limits" in events.recorded[0][1]
    assert len([r for r in caplog.records if "does not sample all" in r.getMessage()]) == 1
    await sampling.close()


async def test_a_full_list_is_never_shortened() -> None:
    charger = ScriptedCharger(
        {
            SAMPLED_DATA: (f"{ENERGY},Power.Active.Import", False),
            SAMPLE_INTERVAL: ("60", False),
            MAX_LENGTH: ("3", True),
        }
    )
    sampling = await configure(charger)
    assert charger.changes()[0] == (
        SAMPLED_DATA,
        f"{ENERGY},Power.Active.Import,Current.Import",  # only what fits
    )
    charger.keys[SAMPLED_DATA] = (f"{ENERGY},Power.Active.Import,SoC", False)
    sampling.handle(ChargerConnected(charger_id="CP1", at=0.0))
    result = await sampling.wait_configured("CP1", timeout=5)
    assert "the list is full (MeterValuesSampledDataMaxLength = 3)" in result.refused[SAMPLED_DATA]
    assert charger.keys[SAMPLED_DATA][0] == f"{ENERGY},Power.Active.Import,SoC"
    await sampling.close()


async def test_unknown_list_is_left_alone() -> None:
    charger = ScriptedCharger({SAMPLE_INTERVAL: ("60", False)})
    sampling = await configure(charger)
    assert charger.changes() == [(SAMPLE_INTERVAL, "10")]
    assert sampling.results["CP1"].refused == {SAMPLED_DATA: "not reported by GetConfiguration"}
    await sampling.close()


async def test_an_unanswering_charger_is_asked_again_then_given_up_on() -> None:
    charger = ScriptedCharger(
        {SAMPLED_DATA: (ENERGY, False), SAMPLE_INTERVAL: ("0", False)}, fail=1
    )
    sampling = await configure(charger)
    assert sampling.results["CP1"].samples_currents  # the second try worked
    charger.fail = 5
    sampling.handle(ChargerConnected(charger_id="CP1", at=0.0))
    result = await sampling.wait_configured("CP1", timeout=5)
    assert result.measurands is None and "TimeoutError" in result.refused["GetConfiguration"]
    await sampling.close()


async def test_interval_follows_the_site_and_the_model() -> None:
    generic = MODELS["generic-ocpp16"]
    assert sample_interval_for(site_config().site, generic) == 10
    assert sample_interval_for(site_config(control_interval=0.2).site, generic) == 5
    assert sample_interval_for(site_config(control_interval=30).site, generic) == 60
    slow = generic.model_copy(update={"meter_values": MeterValues(sample_interval_s=30)})
    assert sample_interval_for(site_config().site, slow) == 30
    # A model that says what it can sample: only that is asked for.
    picky = generic.model_copy(
        update={"id": "picky", "meter_values": MeterValues(measurands=[ENERGY, "Current.Import"])}
    )
    charger = ScriptedCharger({SAMPLED_DATA: (ENERGY, False), SAMPLE_INTERVAL: ("0", False)})
    sampling = await configure(
        charger, config=site_config(model="picky"), models={**MODELS, "picky": picky}
    )
    assert charger.changes()[0] == (SAMPLED_DATA, f"{ENERGY},Current.Import")
    assert not sampling.results["CP1"].refused
    await sampling.close()


async def test_a_cloud_change_of_these_keys_is_followed_by_a_check() -> None:
    charger = ScriptedCharger({SAMPLED_DATA: (ENERGY, False), SAMPLE_INTERVAL: ("10", False)})
    sampling = await configure(charger)
    payload = {"key": SAMPLED_DATA, "value": ENERGY}
    assert sampling.filter_cloud_call("CP1", "ChangeConfiguration", payload) is payload
    charger.keys[SAMPLED_DATA] = (ENERGY, False)  # what the cloud just set
    sampling.cloud_call_answered("CP1", "ChangeConfiguration", payload, {"status": "Accepted"})
    await sampling.wait_configured("CP1", timeout=5)
    assert charger.keys[SAMPLED_DATA][0] == f"{ENERGY},Current.Import,{POWER},Current.Offered"
    before = len(charger.calls)
    sampling.cloud_call_answered("CP1", "ChangeConfiguration", payload, {"status": "Rejected"})
    sampling.cloud_call_answered("CP1", "Reset", {"type": "Soft"}, {"status": "Accepted"})
    await asyncio.sleep(0)
    assert len(charger.calls) == before
    await sampling.close()


async def test_disconnect_cancels_the_work_and_close_ends_it() -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    async def hanging(charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        started.set()
        await never.wait()
        return {}

    sampling = MeterSampling(site_config(), MODELS, hanging)
    sampling.handle(ChargerConnected(charger_id="CP1", at=0.0))
    await started.wait()
    sampling.handle(ChargerDisconnected(charger_id="CP1", at=0.0))
    sampling.handle(ChargerConnected(charger_id="CP1", at=0.0))
    await sampling.close()
    assert "CP1" not in sampling.results


# ------------------------------------------------------------------------------------------
# End to end: a real gateway, a simulated charger


@pytest.fixture
async def meter() -> AsyncIterator[SimMeter]:
    async with SimMeter("eastron-sdm630") as sim:
        yield sim


async def meter_sections(meter: SimMeter) -> dict[str, Any]:
    return {
        "buses": {"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        "meters": [{"profile": "eastron-sdm630", "poll_interval": 0.5}],
    }


async def test_gateway_charger_samples_currents_and_the_controller_sees_them(
    make_gateway: GatewayFactory, meter: SimMeter
) -> None:
    gateway = await make_gateway(
        chargers=[{"id": "CP1", "max_current_a": 16}],
        site={"limit_a": 40},
        auth={"unknown_cards": "accept"},
        **await meter_sections(meter),
    )
    assert gateway.controller is not None and gateway.store is not None
    sampling = gateway.sampling
    assert sampling is not None
    sim = SimCharger("CP1", gateway_url(gateway), connectors=1)
    sim.config[SAMPLED_DATA].value = ENERGY  # the OCPP default: no currents at all
    try:
        await sim.connect()
        await sim.boot()
        result = await sampling.wait_configured("CP1")
        assert sim.config[SAMPLED_DATA].value == f"{ENERGY},Current.Import,{POWER},Current.Offered"
        assert sim.config[SAMPLE_INTERVAL].value == "10"
        assert result.samples_currents and not result.refused
        assert await sim.tap("04A1B2C3") is not None
        await sim.meter_values(1)
        (cp1,) = gateway.controller.state().chargers
        (session,) = cp1.sessions
        assert session.measured_a is not None and max(session.measured_a) > 0
        # The charging car shows its power, not 0 W, on every screen the live state feeds.
        assert gateway.live is not None
        charger_live = gateway.live.charger("CP1")
        assert charger_live is not None and (charger_live.power_w or 0) > 0
        assert all(kind != "meter_sampling" for _, kind, _, _ in await gateway.store.events(10))
    finally:
        await sim.close()
        await sampling.close()


async def test_gateway_charger_refusing_everything_still_charges(
    make_gateway: GatewayFactory, meter: SimMeter
) -> None:
    gateway = await make_gateway(
        chargers=[{"id": "CP1"}],
        site={"limit_a": 40},
        auth={"unknown_cards": "accept"},
        **await meter_sections(meter),
    )
    assert gateway.store is not None
    sampling = gateway.sampling
    assert sampling is not None
    sim = SimCharger("CP1", gateway_url(gateway), connectors=1)
    sim.config[SAMPLED_DATA] = ConfigKey(ENERGY, readonly=True, kind="measurands")
    sim.config[SAMPLE_INTERVAL] = ConfigKey("900", readonly=True, kind="int")
    try:
        await sim.connect()
        await sim.boot()
        result = await sampling.wait_configured("CP1")
        assert result.refused == {SAMPLED_DATA: "read-only", SAMPLE_INTERVAL: "read-only"}
        assert sim.config[SAMPLED_DATA].value == ENERGY
        assert await sim.tap("04A1B2C3") is not None  # the session is not harmed
        assert sim.status_of(1) == "Charging"
        events = [e for e in await gateway.store.events(10) if e[1] == "meter_sampling"]
        assert len(events) == 1 and events[0][2] == "CP1"
        assert "MeterValuesSampledData: read-only" in events[0][3]
    finally:
        await sim.close()
        await sampling.close()


def test_readonly_given_as_a_string_is_read_as_a_flag() -> None:
    from edgegw.energy.sampling import configuration_keys

    keys = configuration_keys(
        {
            "configurationKey": [
                {"key": "A", "readonly": "false", "value": "1"},
                {"key": "B", "readonly": "TRUE", "value": "2"},
                {"key": "C", "readonly": True},
                {"key": "D"},
            ]
        }
    )
    assert [keys[k].readonly for k in "ABCD"] == [False, True, True, False]
