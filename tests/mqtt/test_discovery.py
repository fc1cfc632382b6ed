"""Home Assistant discovery, checked against the rules of Home Assistant's MQTT schemas.

The checks follow ``homeassistant/components/mqtt`` (``schemas.py``: device and availability;
``sensor.py``: ``validate_sensor_state_and_device_class_config``; the platform schemas'
required keys) and the sensor device classes' units and state classes. Every value template
is rendered with Jinja2 against the state the gateway really published, the way Home
Assistant renders it, and must give what the entity expects.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from edgegw.livestate import CHARGER_STATUSES
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from edgegw.sim.meter import SimMeter
from edgegw.telemetry.discovery import Discovery, SiteFeatures
from edgegw.telemetry.topics import Topics
from tests.conftest import GatewayFactory, gateway_url
from tests.mqtt.conftest import PREFIX, Mosquitto, Recorder, telemetry

COMMON = {
    "name",
    "unique_id",
    "availability",
    "availability_mode",
    "device",
    "origin",
    "qos",
    "entity_category",
    "icon",
    "enabled_by_default",
}
ALLOWED_KEYS = {
    "sensor": COMMON
    | {"state_topic", "value_template", "device_class", "unit_of_measurement", "state_class"}
    | {"options", "expire_after", "force_update", "suggested_display_precision"},
    "binary_sensor": COMMON
    | {"state_topic", "value_template", "device_class", "payload_on", "payload_off"},
    "number": COMMON
    | {"state_topic", "command_topic", "command_template", "value_template", "min", "max"}
    | {"step", "mode", "unit_of_measurement", "device_class"},
    "switch": COMMON
    | {"state_topic", "command_topic", "value_template", "payload_on", "payload_off"}
    | {"state_on", "state_off"},
    "button": COMMON | {"command_topic", "payload_press"},
}
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "number": {"command_topic"},
    "switch": {"command_topic"},
    "button": {"command_topic"},
}
SENSOR_UNITS = {
    "current": {"A", "mA"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "energy": {"Wh", "kWh", "MWh", "GWh", "TWh", "mWh", "J", "kJ", "MJ", "GJ"},
}
SENSOR_STATE_CLASSES = {
    "current": {"measurement"},
    "power": {"measurement"},
    "energy": {"total", "total_increasing"},
}
BINARY_DEVICE_CLASSES = {"connectivity", "problem", "plug", "power", "running"}
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}


def check_entity(component: str, config: dict[str, Any]) -> None:
    """Raise AssertionError where Home Assistant would refuse (or silently drop) a key."""
    assert component in ALLOWED_KEYS, component
    unknown = set(config) - ALLOWED_KEYS[component]
    assert not unknown, f"{component} {config.get('unique_id')}: unknown keys {unknown}"
    missing = REQUIRED[component] - set(config)
    assert not missing, f"{component} {config.get('unique_id')}: missing {missing}"
    assert isinstance(config["unique_id"], str) and config["unique_id"]
    assert isinstance(config["name"], str) and config["name"]
    assert config.get("qos", 0) in (0, 1, 2)
    device = config["device"]
    assert set(device) <= DEVICE_KEYS, set(device) - DEVICE_KEYS
    assert device["identifiers"] and all(isinstance(i, str) for i in device["identifiers"])
    for entry in config["availability"]:
        assert set(entry) <= {"topic", "payload_available", "payload_not_available"} | {
            "value_template"
        }
        assert entry["topic"] and "+" not in entry["topic"] and "#" not in entry["topic"]
    assert config["origin"]["name"]
    assert config.get("entity_category") in (None, "diagnostic", "config")
    for key in ("state_topic", "command_topic"):
        if key in config:
            assert "+" not in config[key] and "#" not in config[key]
    if component == "sensor":
        device_class = config.get("device_class")
        if "options" in config:  # validate_sensor_state_and_device_class_config
            assert config["options"], "an empty options list is not allowed"
            assert "state_class" not in config and "unit_of_measurement" not in config
            assert device_class == "enum"
        elif device_class is not None:
            assert config["unit_of_measurement"] in SENSOR_UNITS[device_class]
            assert config["state_class"] in SENSOR_STATE_CLASSES[device_class]
        assert config.get("state_class") in (None, "measurement", "total", "total_increasing")
    if component == "binary_sensor":
        assert config["device_class"] in BINARY_DEVICE_CLASSES
    if component == "number":
        assert config["min"] < config["max"] and config["step"] > 0
        assert config["mode"] in ("auto", "box", "slider")
    if component == "switch":
        assert {"state_on", "state_off"} <= set(config), "state_on/off default to payload_on/off"


async def test_discovery_is_valid_for_home_assistant(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    jinja2 = pytest.importorskip("jinja2")
    cloud = SimCloud(accepted_tags={"04A1B2C3"})
    await cloud.start()
    try:
        async with SimMeter("eastron-sdm630") as meter:
            meter.set_currents(10.0, 11.0, 12.0)
            gateway = await make_gateway(
                cloud_url=cloud.url,
                mqtt=mosquitto.section(commands_enabled=True),
                auth={"unknown_cards": "accept"},
                chargers=[{"id": "CP1", "label": "Bay 1", "max_current_a": 16}, {"id": "CP+2"}],
                site={"limit_a": 32, "margin_a": 2},
                buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
                meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.1}],
            )
            async with (
                Recorder(mosquitto, "#") as recorder,
                telemetry(gateway) as (_live, publisher),
                SimCharger("CP1", gateway_url(gateway), connectors=1) as cp,
            ):
                await publisher.wait_online()
                await cp.boot()
                await cp.status(1, "Available")
                assert await cp.tap("04A1B2C3") is not None
                await cp.status(1, "Charging")
                await cp.meter_values(1)
                await recorder.wait_json(
                    f"{PREFIX}/charger/CP1/state",
                    lambda s: s["status"] == "Charging" and s["energy_wh"] is not None,
                )
                await recorder.wait_json(
                    f"{PREFIX}/site/state",
                    lambda s: (
                        s["meter_ok"]
                        and s["cloud_online"]
                        and s["current_l3_a"] == 12.0
                        and (s["energy_import_wh"] or 0) > 0
                    ),
                )
                await recorder.wait_for(
                    "homeassistant/sensor/"
                    + publisher.topics.node
                    + f"/{publisher.topics.node}_CP1_status/config",
                    lambda m: json.loads(m.payload)["device"].get("manufacturer") == "edgegw-sim",
                )
                configs: dict[str, dict[str, Any]] = {}
                states: dict[str, Any] = {}
                for message in recorder.messages:
                    if message.topic.startswith("homeassistant/") and message.payload:
                        configs[message.topic] = message.json()
                    elif message.topic.endswith("/state"):
                        states[message.topic] = message.json()
    finally:
        await cloud.stop()

    components = Counter(topic.split("/")[1] for topic in configs)
    # Site: 3 currents, power, imported energy, EV power, limit, backlog; meter and cloud
    # binaries; the limit. Each charger: status, power, energy; connected and fault; enabled
    # switch, stop button.
    assert components == {
        "sensor": 8 + 2 * 3,
        "binary_sensor": 2 + 2 * 2,
        "number": 1,
        "switch": 2,
        "button": 2,
    }
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(unique_ids) == len(set(unique_ids))
    env = jinja2.Environment(autoescape=False)
    for topic, config in configs.items():
        component = topic.split("/")[1]
        assert topic.split("/")[2] == publisher.topics.node
        check_entity(component, config)
        availability = env.from_string(config["availability"][0]["value_template"])
        assert availability.render(value="online") == "online"
        assert availability.render(value="stopped") == "offline"
        assert availability.render(value="offline") == "offline"
        if "state_topic" not in config or "value_template" not in config:
            continue
        rendered = env.from_string(config["value_template"]).render(
            value_json=states[config["state_topic"]]
        )
        if component == "binary_sensor":
            assert rendered in (config["payload_on"], config["payload_off"]), (topic, rendered)
        elif component == "switch":
            assert rendered in (config["state_on"], config["state_off"]), (topic, rendered)
        elif config.get("device_class") == "enum":
            assert rendered in config["options"], (topic, rendered)
        elif component == "sensor" and "CP+2" not in json.dumps(config["device"]):
            # A number, or 'None' (unknown) where the value is not known yet.
            assert rendered == "None" or float(rendered) >= 0, (topic, rendered)
        if component == "number":
            command = env.from_string(config["command_template"]).render(value=20)
            assert json.loads(command) == {"limit_a": 20}
    by_id = {c["unique_id"]: c for c in configs.values()}
    node = publisher.topics.node
    status = by_id[f"{node}_CP1_status"]
    assert status["options"] == list(CHARGER_STATUSES)
    assert status["device"]["name"] == "Bay 1" and status["device"]["via_device"] == node
    assert by_id[f"{node}_CP1_energy"]["state_class"] == "total_increasing"
    # The booted charger's device block carries its firmware (Home Assistant's sw_version).
    assert status["device"]["sw_version"] == "sim-1.0"
    assert status["device"]["serial_number"] == "CP1"  # its BootNotification's serial
    assert status["device"]["model"] == cp.model
    # The site's imported energy can go on Home Assistant's Energy dashboard: an energy
    # sensor, total_increasing, in Wh, reading the meter's import register.
    energy = by_id[f"{node}_energy_import"]
    assert energy["device_class"] == "energy" and energy["state_class"] == "total_increasing"
    assert energy["unit_of_measurement"] == "Wh"
    site_state = states[f"{PREFIX}/site/state"]
    rendered = env.from_string(energy["value_template"]).render(value_json=site_state)
    assert float(rendered) == site_state["energy_import_wh"] > 0
    # A charger id with '+' gets an escaped topic and a safe, distinct object id.
    plus = [c for c in configs.values() if c["device"]["name"] == "CP+2"]
    assert plus and all("/charger/CP%2B2/" in c["state_topic"] for c in plus if "state_topic" in c)
    assert f"{PREFIX}/charger/CP%2B2/state" in states


def test_a_chargers_device_block_names_its_firmware_and_serial_number() -> None:
    """What the BootNotification said reaches Home Assistant's device page (and no more)."""
    discovery = Discovery(
        Topics(PREFIX, "homeassistant"),
        SiteFeatures(meter=False, cloud=False, load_capping=False, commands=False),
        site_name="edgegw test",
    )
    booted = discovery.charger(
        "CP1", label="Bay 1", vendor="ABB", model="Terra AC", firmware="1.8.21", serial="TACW2241"
    )
    for message in booted:
        device = message.payload["device"]
        assert device["sw_version"] == "1.8.21" and device["serial_number"] == "TACW2241"
        assert (device["manufacturer"], device["model"]) == ("ABB", "Terra AC")
        check_entity(message.topic.split("/")[1], message.payload)
    unknown = discovery.charger("CP2", label="", vendor=None, model=None)
    assert all(
        {"sw_version", "serial_number", "manufacturer"}.isdisjoint(m.payload["device"])
        for m in unknown
    )
