"""Per-circuit state and Home Assistant sensors, and a 2.0.1 station's state, on a real
mosquitto.

A site with a board: the board's retained state carries its limit, what load capping
allocated under it per phase, its headroom and the load its charger measures; its discovery
entities are valid for Home Assistant and render numbers from the state really published. A
charger's state says its OCPP version and board.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgegw.sim.charger import SimCharger
from edgegw.sim.charger201 import SimCharger201
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url
from tests.mqtt.conftest import PREFIX, Mosquitto, Recorder, telemetry
from tests.mqtt.test_discovery import check_entity
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401


async def test_a_board_has_its_state_topic_and_sensors(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    jinja2 = pytest.importorskip("jinja2")
    async with SimMeter("eastron-sdm630") as meter:
        meter.set_currents(5.0, 5.0, 5.0)
        gateway = await make_gateway(
            mqtt=mosquitto.section(),
            auth={"unknown_cards": "accept"},
            site={"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100, "control_interval": 0.2},
            buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
            meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.1}],
            circuits=[{"name": "level 1/B", "limit_a": [20, 20, 16], "margin_a": 1}],
            chargers=[{"id": "CP1", "circuit": "level 1/B"}, {"id": "CP2"}],
        )
        topic = f"{PREFIX}/circuit/level 1%2FB/state"
        async with (
            Recorder(mosquitto, "#") as recorder,
            telemetry(gateway) as (_live, publisher),
            SimCharger("CP1", gateway_url(gateway), connectors=1) as cp,
        ):
            await publisher.wait_online()
            await cp.boot()
            await cp.status(1, "Available")
            assert await cp.start_transaction(1, "04A1B2C3") is not None
            await cp.status(1, "Charging")
            await cp.meter_values(1)
            state = await recorder.wait_json(
                topic,
                lambda s: (s["allocated_l1_a"] or 0) > 0 and s["load_l1_a"] is not None,
            )
            charger = await recorder.wait_json(
                f"{PREFIX}/charger/CP1/state", lambda s: s["status"] == "Charging"
            )
            configs = {
                m.topic: m.json()
                for m in recorder.messages
                if m.topic.startswith("homeassistant/") and "circuit" in m.topic and m.payload
            }
    assert charger["ocpp_version"] == "ocpp1.6" and charger["circuit"] == "level 1/B"
    assert state["name"] == "level 1/B" and state["parent"] is None
    assert state["limit_a"] == 16 and state["limit_l3_a"] == 16 and state["margin_a"] == 1
    assert state["chargers"] == ["CP1"]
    allocated = [state[f"allocated_l{p}_a"] for p in (1, 2, 3)]
    headroom = [state[f"headroom_l{p}_a"] for p in (1, 2, 3)]
    limits = (20, 20, 16)
    assert all(0 < a <= limit - 1 for a, limit in zip(allocated, limits, strict=True))
    assert headroom == [limit - 1 - a for a, limit in zip(allocated, limits, strict=True)]
    assert state["headroom_a"] == min(headroom)
    assert state["measured_l1_a"] is None  # no meter of its own
    # Home Assistant: a device per board, via the site, every entity valid and rendering a
    # number from the published state.
    keys = sorted(c["unique_id"].rsplit("_", 2)[-1] for c in configs.values())
    assert len(configs) == 8, keys
    env = jinja2.Environment(autoescape=False)
    for config_topic, config in configs.items():
        check_entity(config_topic.split("/")[1], config)
        assert config["state_topic"] == topic
        assert config["device"]["name"] == "Circuit level 1/B"
        assert config["device"]["via_device"] == publisher.topics.node
        rendered = env.from_string(config["value_template"]).render(value_json=state)
        assert float(rendered) >= 0, (config["name"], rendered)
    by_name: dict[str, Any] = {c["name"]: c for c in configs.values()}
    load = env.from_string(by_name["Load L1"]["value_template"])
    assert float(load.render(value_json=state)) == state["load_l1_a"]
    metered = {**state, "measured_l1_a": 12.5}
    assert float(load.render(value_json=metered)) == 12.5  # a board meter wins
    assert json.dumps(state)  # plain JSON


async def test_a_201_station_is_published_like_a_16_charger(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
    mosquitto: Mosquitto,
) -> None:
    """A 2.0.1 station's state: its version, its EVSE's status, its session and current, the
    same fields as a 1.6 charger's (its connectors are its EVSEs)."""
    gateway = await make_gateway(
        cloud_url=cloud201.url, mqtt=mosquitto.section(), chargers=CHARGERS
    )
    async with (
        Recorder(mosquitto, "#") as recorder,
        telemetry(gateway) as (_live, publisher),
        SimCharger201("CS201", gateway_url(gateway)) as cs,
    ):
        await publisher.wait_online()
        await cs.boot()
        await cs.status(1, "Occupied")
        await cs.start(1, "04A1B2C3")
        await cs.meter(1, 16.0, 1200.0)
        state = await recorder.wait_json(
            f"{PREFIX}/charger/CS201/state",
            lambda s: s["status"] == "Charging" and s["current_l1_a"] == 16.0,
        )
    assert state["ocpp_version"] == "ocpp2.0.1" and state["connected"]
    assert state["vendor"] == "edgegw" and state["model"] == "Sim201"
    (evse,) = state["connectors"]
    assert evse["connector"] == 1 and evse["status"] == "Charging"
    assert isinstance(evse["session"]["transaction_id"], str)  # the station's own id
    assert state["sessions_active"] == 1
