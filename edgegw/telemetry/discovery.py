"""Home Assistant MQTT discovery: the entities edgegw announces, described as data.

The site is one device (current per phase, power and the imported energy from the site
meter, the energy ready for Home Assistant's Energy dashboard; the chargers' power, the
limit, the sync backlog; cloud link and meter health as binary sensors); each charger is a
device connected through it (status, power, session energy; connected and fault as binary
sensors; its firmware and serial number in its device block); so is each circuit (board) of
load capping (its limit, headroom, the current allocated under it and its load per phase: its
own meter's reading where it has one, else what its chargers measure). The site's limits from
outside are a binary sensor each (active), and peak shaving gives the month's peak, the target
in force, the quarter-hour's projection, shaving now and what was shaved. With commands enabled,
controls are announced too: a number for the temporary site limit, and per charger a switch
(enabled) and a button (stop charging).

Every entity reads its value from the retained state topic with a template and is available
while ``<prefix>/availability`` says ``online``; the availability template maps ``stopped``
(a clean shutdown) to ``offline``, which Home Assistant would otherwise ignore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgegw import __version__
from edgegw.live.snapshot import CHARGER_STATUSES
from edgegw.telemetry.topics import Topics, object_id

JsonDict = dict[str, Any]

AVAILABILITY_TEMPLATE = "{{ 'online' if value == 'online' else 'offline' }}"


@dataclass(frozen=True, slots=True)
class Sensor:
    """One entity: its component, key (unique within its device), name and extra config."""

    component: str
    key: str
    name: str
    config: JsonDict


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    topic: str
    payload: JsonDict


@dataclass(frozen=True, slots=True)
class SiteFeatures:
    """What the site has, so only entities with a source are announced."""

    meter: bool
    cloud: bool
    load_capping: bool
    commands: bool
    limit_min_a: float = 0.0
    limit_max_a: float = 0.0
    limits: tuple[str, ...] = ()
    """The names of the limits from outside (``[[limits]]``): a binary sensor each."""
    peak: bool = False
    """Peak shaving (``[peak]``): the month's peak, the projection, what was shaved."""


def _measurement(template: str, device_class: str, unit: str, **extra: Any) -> JsonDict:
    return {
        "value_template": template,
        "device_class": device_class,
        "unit_of_measurement": unit,
        "state_class": "measurement",
        **extra,
    }


def site_sensors(features: SiteFeatures) -> list[Sensor]:
    sensors: list[Sensor] = []
    if features.meter:
        for phase in (1, 2, 3):
            sensors.append(
                Sensor(
                    "sensor",
                    f"current_l{phase}",
                    f"Site current L{phase}",
                    _measurement(f"{{{{ value_json.current_l{phase}_a }}}}", "current", "A"),
                )
            )
        sensors.append(
            Sensor(
                "sensor",
                "power",
                "Site power",
                _measurement("{{ value_json.power_w }}", "power", "W"),
            )
        )
        sensors.append(
            Sensor(
                "sensor",
                "energy_import",
                "Site energy imported",
                {
                    # The meter's import register: what Home Assistant's Energy dashboard
                    # takes as "grid consumption".
                    "value_template": "{{ value_json.energy_import_wh }}",
                    "device_class": "energy",
                    "unit_of_measurement": "Wh",
                    "state_class": "total_increasing",
                },
            )
        )
        sensors.append(
            Sensor(
                "binary_sensor",
                "meter_problem",
                "Site meter",
                {
                    "value_template": "{{ 'OFF' if value_json.meter_ok else 'ON' }}",
                    "device_class": "problem",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "entity_category": "diagnostic",
                },
            )
        )
    sensors.append(
        Sensor(
            "sensor",
            "ev_power",
            "Charging power",
            _measurement("{{ value_json.ev_power_w }}", "power", "W"),
        )
    )
    if features.load_capping:
        sensors.append(
            Sensor(
                "sensor",
                "limit",
                "Site limit",
                _measurement("{{ value_json.limit_a }}", "current", "A"),
            )
        )
    if features.cloud:
        sensors.append(
            Sensor(
                "binary_sensor",
                "cloud_link",
                "Cloud link",
                {
                    "value_template": "{{ 'ON' if value_json.cloud_online else 'OFF' }}",
                    "device_class": "connectivity",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "entity_category": "diagnostic",
                },
            )
        )
        sensors.append(
            Sensor(
                "sensor",
                "sync_backlog",
                "Messages waiting for the cloud",
                {
                    "value_template": "{{ value_json.sync_queued }}",
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                    "icon": "mdi:cloud-upload",
                },
            )
        )
    sensors += outside_sensors(features)
    if features.commands and features.load_capping:
        sensors.append(
            Sensor(
                "number",
                "limit_set",
                "Temporary site limit",
                {
                    "command_template": '{"limit_a": {{ value }}}',
                    "value_template": "{{ value_json.limit_a }}",
                    "min": features.limit_min_a,
                    "max": features.limit_max_a,
                    "step": 1,
                    "mode": "box",
                    "unit_of_measurement": "A",
                    "device_class": "current",
                },
            )
        )
    return sensors


def outside_sensors(features: SiteFeatures) -> list[Sensor]:
    """The site's limits from outside (one binary sensor each: active) and peak shaving."""
    sensors = [
        Sensor(
            "binary_sensor",
            f"limit_{object_id(name)}",
            f"Limit {name}",
            {
                "value_template": (
                    f"{{{{ 'ON' if (value_json.limits or {{}}).get({name!r}, {{}}).active "
                    "else 'OFF' }}"
                ),
                "payload_on": "ON",
                "payload_off": "OFF",
                "icon": "mdi:transmission-tower-export",
            },
        )
        for name in features.limits
    ]
    if not features.peak:
        return sensors
    kw = {"device_class": "power", "unit_of_measurement": "kW"}
    sensors += [
        Sensor(
            "sensor",
            "peak_month",
            "Month's peak (15 min)",
            {"value_template": "{{ value_json.peak_month_kw }}", **kw},
        ),
        Sensor(
            "sensor",
            "peak_target",
            "Peak target in force",
            {"value_template": "{{ value_json.peak_effective_target_kw }}", **kw},
        ),
        Sensor(
            "sensor",
            "peak_projected",
            "Quarter-hour projected",
            _measurement("{{ value_json.peak_projected_kw }}", "power", "kW"),
        ),
        Sensor(
            "binary_sensor",
            "peak_limiting",
            "Peak shaving",
            {
                "value_template": "{{ 'ON' if value_json.peak_limiting else 'OFF' }}",
                "payload_on": "ON",
                "payload_off": "OFF",
                "icon": "mdi:chart-bell-curve-cumulative",
            },
        ),
        Sensor(
            "sensor",
            "peak_shaved_quarters",
            "Quarter-hours shaved this month",
            {"value_template": "{{ value_json.peak_shaved_quarters }}", "icon": "mdi:counter"},
        ),
        Sensor(
            "sensor",
            "peak_shaved_max",
            "Most shaved this month",
            {"value_template": "{{ value_json.peak_shaved_kw_max }}", **kw},
        ),
    ]
    return sensors


def charger_sensors(features: SiteFeatures) -> list[Sensor]:
    sensors = [
        Sensor(
            "sensor",
            "status",
            "Status",
            {
                "value_template": "{{ value_json.status }}",
                "device_class": "enum",
                "options": list(CHARGER_STATUSES),
            },
        ),
        Sensor("sensor", "power", "Power", _measurement("{{ value_json.power_w }}", "power", "W")),
        Sensor(
            "sensor",
            "energy",
            "Session energy",
            {
                "value_template": "{{ value_json.energy_wh }}",
                "device_class": "energy",
                "unit_of_measurement": "Wh",
                "state_class": "total_increasing",
            },
        ),
        Sensor(
            "binary_sensor",
            "connected",
            "Connected",
            {
                "value_template": "{{ 'ON' if value_json.connected else 'OFF' }}",
                "device_class": "connectivity",
                "payload_on": "ON",
                "payload_off": "OFF",
                "entity_category": "diagnostic",
            },
        ),
        Sensor(
            "binary_sensor",
            "fault",
            "Fault",
            {
                "value_template": "{{ 'ON' if value_json.fault else 'OFF' }}",
                "device_class": "problem",
                "payload_on": "ON",
                "payload_off": "OFF",
            },
        ),
    ]
    if features.commands:
        sensors += [
            Sensor(
                "switch",
                "enabled",
                "Enabled",
                {
                    "value_template": "{{ 'ON' if value_json.enabled else 'OFF' }}",
                    "payload_on": '{"enabled": true}',
                    "payload_off": '{"enabled": false}',
                    "state_on": "ON",
                    "state_off": "OFF",
                },
            ),
            Sensor("button", "stop", "Stop charging", {"payload_press": "{}"}),
        ]
    return sensors


def circuit_sensors() -> list[Sensor]:
    """A circuit's (board's) entities: its limit, the current allocated under it per phase,
    its headroom (the tightest phase), and its own meter's currents (unknown without one)."""
    sensors = [
        Sensor(
            "sensor", "limit", "Limit", _measurement("{{ value_json.limit_a }}", "current", "A")
        ),
        Sensor(
            "sensor",
            "headroom",
            "Headroom",
            _measurement("{{ value_json.headroom_a }}", "current", "A"),
        ),
    ]
    for phase in (1, 2, 3):
        sensors.append(
            Sensor(
                "sensor",
                f"allocated_l{phase}",
                f"Allocated L{phase}",
                _measurement(f"{{{{ value_json.allocated_l{phase}_a }}}}", "current", "A"),
            )
        )
    for phase in (1, 2, 3):
        sensors.append(
            Sensor(
                "sensor",
                f"load_l{phase}",
                f"Load L{phase}",
                _measurement(
                    f"{{{{ value_json.measured_l{phase}_a if value_json.measured_l{phase}_a "
                    f"is not none else value_json.load_l{phase}_a }}}}",
                    "current",
                    "A",
                ),
            )
        )
    return sensors


class Discovery:
    """Builds the discovery messages of the site, of each charger and of each circuit."""

    def __init__(self, topics: Topics, features: SiteFeatures, *, site_name: str) -> None:
        self._topics = topics
        self._features = features
        self._site_name = site_name
        node = topics.node
        self.site_device_id = node if node.startswith("edgegw") else f"edgegw_{node}"

    def _availability(self) -> list[JsonDict]:
        return [
            {
                "topic": self._topics.availability,
                "payload_available": "online",
                "payload_not_available": "offline",
                "value_template": AVAILABILITY_TEMPLATE,
            }
        ]

    def _message(
        self,
        sensor: Sensor,
        device: JsonDict,
        unique_prefix: str,
        state_topic: str,
        command_topic: str | None,
    ) -> DiscoveryMessage:
        unique_id = f"{unique_prefix}_{sensor.key}"
        payload: JsonDict = {
            "name": sensor.name,
            "unique_id": unique_id,
            "availability": self._availability(),
            "device": device,
            "origin": {"name": "edgegw", "sw_version": __version__},
            "qos": 1,
        }
        if sensor.component != "button":
            payload["state_topic"] = state_topic
        if command_topic is not None:
            payload["command_topic"] = command_topic
        payload.update(sensor.config)
        return DiscoveryMessage(self._topics.discovery(sensor.component, unique_id), payload)

    def site(self) -> list[DiscoveryMessage]:
        device = {
            "identifiers": [self.site_device_id],
            "name": self._site_name,
            "manufacturer": "edgegw",
            "model": "EV charging edge gateway",
            "sw_version": __version__,
        }
        out = []
        for sensor in site_sensors(self._features):
            command = self._topics.site_command("limit") if sensor.key == "limit_set" else None
            out.append(
                self._message(sensor, device, self.site_device_id, self._topics.site_state, command)
            )
        return out

    def charger(
        self,
        charger_id: str,
        *,
        label: str,
        vendor: str | None,
        model: str | None,
        firmware: str | None = None,
        serial: str | None = None,
    ) -> list[DiscoveryMessage]:
        """A charger's entities; its device block says what its BootNotification told
        (vendor, model, firmware as ``sw_version``, serial number) once it has booted."""
        device_id = f"{self.site_device_id}_{object_id(charger_id)}"
        device: JsonDict = {
            "identifiers": [device_id],
            "name": label or charger_id,
            "via_device": self.site_device_id,
        }
        if vendor:
            device["manufacturer"] = vendor
        if model:
            device["model"] = model
        if firmware:
            device["sw_version"] = firmware
        if serial:
            device["serial_number"] = serial
        commands = {
            "enabled": self._topics.charger_command(charger_id, "enabled"),
            "stop": self._topics.charger_command(charger_id, "stop"),
        }
        return [
            self._message(
                sensor,
                device,
                device_id,
                self._topics.charger_state(charger_id),
                commands.get(sensor.key) if sensor.component in ("switch", "button") else None,
            )
            for sensor in charger_sensors(self._features)
        ]

    def circuit(self, name: str) -> list[DiscoveryMessage]:
        """A circuit's entities, as a device connected through the site's."""
        device_id = f"{self.site_device_id}_circuit_{object_id(name)}"
        device: JsonDict = {
            "identifiers": [device_id],
            "name": f"Circuit {name}",
            "via_device": self.site_device_id,
        }
        return [
            self._message(sensor, device, device_id, self._topics.circuit_state(name), None)
            for sensor in circuit_sensors()
        ]
