"""Commands: validated strictly, carried out through the gateway, every one answered."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgegw.config import Config, parse_config
from edgegw.livestate import LiveState
from edgegw.services.caretaker import CaretakerSettings
from edgegw.services.charger_actions import ChargerActions, LiveSessions
from edgegw.services.ports import Chargers
from edgegw.sim.charger import SimCharger
from edgegw.store.journal import EventFilter
from edgegw.store.overrides import ChargerOverrides
from edgegw.store.store import Store
from edgegw.telemetry.commands import (
    CommandRefused,
    EnableCharger,
    GatewayControls,
    SiteLimit,
    StopSession,
    parse_command,
)
from edgegw.telemetry.publisher import MqttPublisher
from edgegw.telemetry.topics import CommandRoute
from tests.conftest import GatewayFactory, gateway_url
from tests.mqtt.conftest import PREFIX, Mosquitto, Recorder, publish, telemetry

SITE = {"limit_a": 32, "margin_a": 2}


def site_config(tmp_path: Path, **mqtt: Any) -> Config:
    return parse_config(
        {
            "store": {"path": str(tmp_path / "gw.db")},
            "chargers": [{"id": "CP1"}],
            "site": SITE,
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1", "port": 1}},
            "meters": [{"name": "grid", "profile": "eastron-sdm630"}],
            **({"mqtt": mqtt} if mqtt else {}),
        }
    )


def parse(route: CommandRoute, payload: str, config: Config) -> Any:
    return parse_command(
        route,
        payload,
        site=config.site,
        max_duration=7200,
        known_charger=lambda cid: cid == "CP1",
    )


@pytest.mark.parametrize(
    ("route", "payload", "reason"),
    [
        (CommandRoute("limit"), "{", "not JSON"),
        (CommandRoute("limit"), '{"limit": 10}', "unknown key 'limit'"),
        (CommandRoute("limit"), "{}", "limit_a is missing"),
        (CommandRoute("limit"), "40", "above the configured limit (32 A)"),
        (CommandRoute("limit"), "[10, 10]", "one number or [L1, L2, L3]"),
        (CommandRoute("limit"), "2", "must be above the margin (2 A)"),
        (CommandRoute("limit"), '"ten"', "limit_a must be a number"),
        (CommandRoute("limit"), "true", "limit_a must be a number"),
        (CommandRoute("limit"), '{"limit_a": 10, "duration_s": 9000}', "at most 7200 s"),
        (CommandRoute("limit"), '{"limit_a": 10, "request_id": 5}', "request_id must be"),
        (CommandRoute("reboot"), "{}", "unknown site command 'reboot'"),
        (CommandRoute("stop", "CP9"), "{}", "unknown charger 'CP9'"),
        (CommandRoute("enabled", "CP1"), '"yes"', "enabled must be true or false"),
        (CommandRoute("stop", "CP1"), '{"connector": 0}', "connector must be an integer >= 1"),
        (CommandRoute("stop", "CP1"), '{"connector": 1, "transaction_id": 2}', "not both"),
        (CommandRoute("stop", "CP1"), "[]", "must be a JSON object"),
        (CommandRoute("reset", "CP1"), "{}", "unknown charger command 'reset'"),
        (CommandRoute("stop", "CP1"), "x" * 2000, "at most 1024"),
    ],
)
def test_bad_commands_are_refused_with_a_reason(
    tmp_path: Path, route: CommandRoute, payload: str, reason: str
) -> None:
    with pytest.raises(CommandRefused, match=re.escape(reason)):
        parse(route, payload, site_config(tmp_path))


def test_good_commands_parse(tmp_path: Path) -> None:
    config = site_config(tmp_path)
    limit = parse(CommandRoute("limit"), '{"limit_a": [20, 25, 32], "duration_s": 600}', config)
    assert limit.command == SiteLimit((20.0, 25.0, 32.0), 600.0)
    assert parse(CommandRoute("limit"), "16", config).command == SiteLimit((16.0,) * 3, 3600.0)
    assert parse(CommandRoute("limit"), '{"limit_a": null}', config).command.limit_a is None
    enabled = parse(
        CommandRoute("enabled", "CP1"), '{"enabled": false, "request_id": "r1"}', config
    )
    assert enabled.command == EnableCharger("CP1", False) and enabled.request_id == "r1"
    assert parse(CommandRoute("enabled", "CP1"), "true", config).command.enabled is True
    assert parse(CommandRoute("stop", "CP1"), "", config).command == StopSession("CP1")
    stop = parse(CommandRoute("stop", "CP1"), '{"connector": 2}', config).command
    assert stop == StopSession("CP1", connector=2)
    no_site = parse_config({"chargers": [{"id": "CP1"}]})
    with pytest.raises(CommandRefused, match="load capping is off"):
        parse(CommandRoute("limit"), "16", no_site)


@dataclass
class _Parts:
    """The gateway parts LiveState reads, for a publisher without a gateway."""

    config: Config
    sessions: dict[str, Any] = field(default_factory=dict)
    store: None = None
    meters: None = None
    controller: Any = None
    authorizer: None = None


class _Controller:
    """The load controller's side of the caretaker's limits (what the service asks of it)."""

    def __init__(self) -> None:
        self.limits: list[tuple[Any, Any]] = []

    def set_temporary_limit(self, limit_a: Any, duration_s: Any) -> None:
        self.limits.append((limit_a, duration_s))

    def charger_max(self, charger_id: str) -> float | None:
        return None

    def set_charger_max(self, charger_id: str, max_current_a: float | None) -> None:
        raise AssertionError("no charger maximum expected")


async def _no_call(
    charger_id: str, action: str, payload: dict[str, Any], timeout: float = 30
) -> dict[str, Any]:
    raise AssertionError("no charger call expected")


@asynccontextmanager
async def _services(
    config: Config, controller: _Controller | None, connected: dict[str, Any]
) -> AsyncIterator[tuple[GatewayControls, Store]]:
    """The MQTT controls over the real services, on a real store."""
    assert config.store.path is not None
    store = await Store.open(config.store.path)
    live = LiveState(_Parts(config))
    chargers = Chargers(lambda: config, connected)
    settings = CaretakerSettings(
        chargers,
        ChargerOverrides(store.db),
        store.event,
        limits=controller,
        cards=None,
        clock=time.time,
    )
    actions = ChargerActions(_no_call, chargers, LiveSessions(live), store.event)
    try:
        yield GatewayControls(actions, settings.site_limits), store
    finally:
        await settings.aclose()
        await store.close()


async def test_gateway_controls_need_load_capping_for_a_site_limit(tmp_path: Path) -> None:
    config = site_config(tmp_path)
    async with _services(config, None, {}) as (controls, _store):
        with pytest.raises(CommandRefused, match="load capping is off"):
            await controls.set_site_limit(SiteLimit((20.0,) * 3, 60))
    controller = _Controller()
    async with _services(config, controller, {}) as (controls, _store):
        assert await controls.set_site_limit(SiteLimit((20.0,) * 3, 60)) == "limit 20 A for 60 s"
        uneven = await controls.set_site_limit(SiteLimit((20.0, 20.0, 16.0), 60))
        assert uneven == "limit 20/20/16 A for 60 s"
        assert await controls.set_site_limit(SiteLimit(None, 60)) == "temporary limit ended"
        with pytest.raises(CommandRefused, match="CP1 is not connected"):
            await controls.stop_session(StopSession("CP1"))
        with pytest.raises(CommandRefused, match="no charger 'CP9' is configured"):
            await controls.stop_session(StopSession("CP9"))
    assert controller.limits == [((20.0, 20.0, 20.0), 60), ((20.0, 20.0, 16.0), 60), (None, None)]
    connected = SimpleNamespace(link=SimpleNamespace(version="ocpp1.6"))  # a session's shape
    async with _services(config, None, {"CP1": connected}) as (controls, _store):
        with pytest.raises(CommandRefused, match="no session runs on CP1"):
            await controls.stop_session(StopSession("CP1"))


async def test_site_limit_over_mqtt(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = site_config(tmp_path, **mosquitto.section(commands_enabled=True))
    controller = _Controller()
    async with _services(config, controller, {}) as (controls, store):
        live = LiveState(_Parts(config))
        publisher = MqttPublisher(config, live, controls=controls)
        topic = f"{PREFIX}/site/limit/set"
        result = f"{PREFIX}/site/limit/result"
        # A command someone left retained must not run again on every reconnect.
        await publish(mosquitto, topic, '{"limit_a": 16, "request_id": "old"}', retain=True)
        async with Recorder(mosquitto) as recorder:
            publisher.start()
            try:
                await publisher.wait_online()
                retained = await recorder.wait_json(result, lambda r: r["request_id"] == "old")
                await publish(
                    mosquitto, topic, '{"limit_a": 20, "duration_s": 600, "request_id": "a"}'
                )
                ok = await recorder.wait_json(result, lambda r: r["request_id"] == "a")
                await publish(mosquitto, topic, '{"limit_a": 45, "request_id": "b"}')
                refused = await recorder.wait_json(result, lambda r: r["request_id"] == "b")
            finally:
                await publisher.close()
        await controls_written(controls)
        kept = await ChargerOverrides(store.db).temporary_limit()
        events = [e for e in await store.events() if e[1] == "site.temporary_limit"]
    assert ok["ok"] is True and ok["command"] == "limit" and ok["detail"] == "limit 20 A for 600 s"
    assert refused["ok"] is False and "above the configured limit" in refused["reason"]
    assert retained["ok"] is False and "retained commands are ignored" in retained["reason"]
    assert controller.limits == [((20.0, 20.0, 20.0), 600.0)]
    assert kept is not None and kept.limit_a == (20.0, 20.0, 20.0)  # outlasts a restart
    assert [e[3] for e in events] == ["temporary site limit 20/20/20 A for 600 s"]


async def controls_written(controls: GatewayControls) -> None:
    limits = controls._site_limits
    assert limits is not None
    await limits.written()


async def test_charger_commands_over_mqtt(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    gateway = await make_gateway(
        mqtt=mosquitto.section(commands_enabled=True), auth={"unknown_cards": "accept"}
    )
    stop = f"{PREFIX}/charger/CP1/stop/set"
    enabled = f"{PREFIX}/charger/CP1/enabled/set"

    def result_of(topic: str) -> str:
        return topic.removesuffix("/set") + "/result"

    async with (
        telemetry(gateway) as (_live, publisher),
        Recorder(mosquitto) as recorder,
        SimCharger("CP1", gateway_url(gateway), connectors=1) as cp,
    ):
        await publisher.wait_online()
        await cp.boot()
        await cp.status(1, "Available")
        tx = await cp.tap("04A1B2C3")
        assert tx is not None
        await recorder.wait_json(f"{PREFIX}/charger/CP1/state", lambda s: s["sessions_active"] == 1)

        await publish(mosquitto, stop, '{"request_id": "stop-1"}')
        stopped = await recorder.wait_json(result_of(stop), lambda r: r["request_id"] == "stop-1")
        assert stopped["ok"] is True, stopped
        assert stopped["detail"] == f"stopping connector 1 (transaction {tx})"
        assert (await cp.wait_call("RemoteStopTransaction"))["transactionId"] == tx
        event = await recorder.wait_json(
            f"{PREFIX}/events", lambda e: e["event"] == "session_stopped"
        )
        assert event["reason"] == "Remote" and event["transaction_id"] == tx

        await publish(mosquitto, stop, '{"request_id": "stop-2"}')
        again = await recorder.wait_json(result_of(stop), lambda r: r["request_id"] == "stop-2")
        assert again["ok"] is False and "no session runs on CP1" in again["reason"]

        await publish(mosquitto, enabled, '{"enabled": false, "request_id": "off"}')
        off = await recorder.wait_json(result_of(enabled), lambda r: r["request_id"] == "off")
        assert off["ok"] is True and off["detail"] == "CP1 is Inoperative"
        await recorder.wait_json(
            f"{PREFIX}/charger/CP1/state",
            lambda s: s["enabled"] is False and s["status"] == "Unavailable",
        )

        await publish(mosquitto, f"{PREFIX}/charger/CP2/enabled/set", "true")
        absent = await recorder.wait_json(
            f"{PREFIX}/charger/CP2/enabled/result", lambda r: r["ok"] is False
        )
        assert absent["reason"] == "CP2 is not connected" and absent["charger"] == "CP2"

        await publish(mosquitto, f"{PREFIX}/charger/CP1/reset/set", "{}")
        unknown = await recorder.wait_json(
            f"{PREFIX}/charger/CP1/reset/result", lambda r: r["ok"] is False
        )
        assert "unknown charger command 'reset'" in unknown["reason"]

        await publish(mosquitto, f"{PREFIX}/site/limit/set", "20")
        no_site = await recorder.wait_json(f"{PREFIX}/site/limit/result", lambda r: True)
        assert no_site["ok"] is False and "load capping is off" in no_site["reason"]


async def test_commands_are_off_by_default(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    gateway = await make_gateway(mqtt=mosquitto.section(), auth={"unknown_cards": "accept"})
    async with (
        telemetry(gateway) as (_live, publisher),
        Recorder(mosquitto, "#") as recorder,
        SimCharger("CP1", gateway_url(gateway), connectors=1) as cp,
    ):
        await publisher.wait_online()
        await cp.boot()
        assert await cp.tap("04A1B2C3") is not None
        await publish(mosquitto, f"{PREFIX}/charger/CP1/stop/set", "{}")
        # The command reached the broker (QoS 1) before Home Assistant's "online" was sent, and
        # a broker forwards to one client in order: once the gateway announced itself again,
        # the command had its chance too.
        node = publisher.topics.node
        announcement = f"homeassistant/sensor/{node}/{node}_ev_power/config"
        await recorder.wait_until(lambda: len(recorder.on(announcement)) >= 1)
        before = len(recorder.on(announcement))
        await publish(mosquitto, "homeassistant/status", "online")
        await recorder.wait_until(lambda: len(recorder.on(announcement)) > before)
    assert not [m for m in recorder.messages if m.topic.endswith("/result")]
    assert not [a for a, _p in cp.received if a == "RemoteStopTransaction"]
    components = {m.topic.split("/")[1] for m in recorder.messages if "/config" in m.topic}
    assert components == {"sensor", "binary_sensor"}  # no switch, button or number


async def test_a_session_stopped_over_mqtt_is_recorded_like_one_stopped_on_the_socket(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    """One use case, one record: `edgegw events` shows who stopped a session from Home
    Assistant exactly as it shows one stopped with `edgegw chargers stop`."""
    gateway = await make_gateway(
        mqtt=mosquitto.section(commands_enabled=True), auth={"unknown_cards": "accept"}
    )
    stop = f"{PREFIX}/charger/CP1/stop/set"
    async with (
        telemetry(gateway) as (_live, publisher),
        Recorder(mosquitto) as recorder,
        SimCharger("CP1", gateway_url(gateway), connectors=1) as cp,
    ):
        await publisher.wait_online()
        await cp.boot()
        await cp.status(1, "Available")
        tx = await cp.tap("04A1B2C3")
        assert tx is not None
        await recorder.wait_json(f"{PREFIX}/charger/CP1/state", lambda s: s["sessions_active"] == 1)
        await publish(mosquitto, stop, '{"request_id": "stop-1"}')
        stopped = await recorder.wait_json(
            stop.removesuffix("/set") + "/result", lambda r: r["request_id"] == "stop-1"
        )
        assert stopped["ok"] is True, stopped
        assert gateway.journal is not None
        entries = await gateway.journal.read(
            50, EventFilter(kinds=("action.RemoteStopTransaction",))
        )
    (entry,) = entries
    assert entry.charger_id == "CP1"
    assert entry.message == f"stop transaction {tx} on connector 1: Accepted"
    assert entry.data["request"] == {"transactionId": tx}
    assert entry.data["answer"] == {"status": "Accepted"}
