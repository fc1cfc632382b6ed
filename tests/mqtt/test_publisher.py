"""The publisher against a real mosquitto: retained state, availability, events, reconnects."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgegw.config import parse_config
from edgegw.livestate import LiveChange, LiveState, SiteLive
from edgegw.ocpp.events import ChargerConnected, Measured
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from edgegw.telemetry.publisher import MqttPublisher
from edgegw.telemetry.settings import MqttConfig
from tests.conftest import GatewayFactory, gateway_url
from tests.mqtt.conftest import PREFIX, Mosquitto, Recorder, telemetry

AVAILABILITY = f"{PREFIX}/availability"
SITE = f"{PREFIX}/site/state"
CP1 = f"{PREFIX}/charger/CP1/state"
CP2 = f"{PREFIX}/charger/CP2/state"
EVENTS = f"{PREFIX}/events"


async def test_state_is_retained_events_are_not_and_a_clean_stop_says_stopped(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    gateway = await make_gateway(
        mqtt=mosquitto.section(publish_cards=True),
        auth={"unknown_cards": "accept"},
        chargers=[{"id": "CP1", "label": "Bay 1"}, {"id": "CP2"}],
    )
    async with telemetry(gateway) as (_live, publisher), Recorder(mosquitto) as early:
        await publisher.wait_online()
        async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
            await cp.boot()
            await cp.status(1, "Available")
            tx = await cp.tap("04A1B2C3")
            assert tx is not None
            await cp.status(1, "Charging")
            await cp.meter_values(1)
            state = await early.wait_json(
                CP1, lambda s: s["status"] == "Charging" and (s["power_w"] or 0) > 0
            )
            started = await early.wait_json(EVENTS, lambda e: e["event"] == "session_started")

            # A building system that subscribes later finds the state retained, not the events.
            async with Recorder(mosquitto) as late:
                availability = await late.wait_for(AVAILABILITY)
                assert availability.payload == "online" and availability.retain
                charger = await late.wait_for(CP1)
                site = await late.wait_for(SITE)
                assert charger.retain and site.retain
                assert late.on(EVENTS) == []

    assert state["label"] == "Bay 1" and state["connected"] is True
    assert state["vendor"] == "edgegw-sim" and state["sessions_active"] == 1
    assert state["current_l1_a"] > 0 and state["energy_wh"] is not None
    session = state["connectors"][0]["session"]
    assert session["transaction_id"] == tx and session["id_tag"] == "04A1B2C3"
    assert started["charger"] == "CP1" and started["connector"] == 1
    assert started["transaction_id"] == tx and started["id_tag"] == "04A1B2C3"
    site_state = site.json()
    assert site_state["cloud"] == "standalone" and site_state["chargers_total"] == 2
    assert site_state["meter"] is None and site_state["limit_a"] is None

    # The clean stop left 'stopped' retained (not the last will's 'offline').
    async with Recorder(mosquitto, AVAILABILITY) as after:
        message = await after.wait_for(AVAILABILITY)
        assert message.payload == "stopped" and message.retain


async def test_cards_stay_private_unless_the_site_allows_them(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    gateway = await make_gateway(
        mqtt=mosquitto.section(), auth={"unknown_cards": "reject"}, chargers=[{"id": "CP1"}]
    )
    async with (
        telemetry(gateway) as (_live, publisher),
        Recorder(mosquitto) as recorder,
        SimCharger("CP1", gateway_url(gateway), connectors=1) as cp,
    ):
        await publisher.wait_online()
        await cp.boot()
        assert await cp.tap("04A1B2C3") is None  # refused: unknown card
        refused = await recorder.wait_json(EVENTS, lambda e: e["event"] == "card_refused")
    assert refused["status"] == "Invalid" and refused["charger"] == "CP1"
    assert "id_tag" not in refused and "owner" not in refused
    assert all("04A1B2C3" not in m.payload for m in recorder.messages)


async def test_broker_slow_then_down_then_back(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    gateway = await make_gateway(
        mqtt=mosquitto.section(event_buffer=5), auth={"unknown_cards": "accept"}
    )
    async with (
        telemetry(gateway) as (_live, publisher),
        SimCharger("CP1", gateway_url(gateway), connectors=1) as cp,
    ):
        await publisher.wait_online()
        await cp.boot()
        assert await cp.tap("04A1B2C3") is not None
        await cp.status(1, "Charging")

        async def charger_keeps_going(rounds: int) -> float:
            """The charger's calls are answered as fast as ever; returns the slowest (s)."""
            slowest = 0.0
            for i in range(rounds):
                cp.car_current_a = 6.0 + i % 10
                began = time.monotonic()
                await cp.meter_values(1)
                await cp.heartbeat()
                slowest = max(slowest, time.monotonic() - began)
            return slowest

        # Slow: the broker takes bytes but answers nothing.
        mosquitto.pause()
        before = publisher.published
        assert await charger_keeps_going(8) < 1.0
        assert publisher.published - before <= 1  # the publisher is stuck, the relay is not
        buffered = publisher.buffered()
        assert buffered["states"] <= 3 and buffered["events"] <= 5

        # Down: stopped, so its retained messages are gone too.
        await mosquitto.stop()
        assert await charger_keeps_going(8) < 1.0
        await cp.status(1, "SuspendedEV")
        for kind in range(8):  # more events than the ring keeps
            await cp.status(1, "Faulted" if kind % 2 else "Charging", "OtherError")
            await cp.status(1, "Charging")
        buffered = publisher.buffered()
        assert buffered["states"] <= 3 and buffered["events"] <= 5
        assert publisher.dropped_events > 0
        assert not publisher.connected

        # Back: the latest state is published again, without anyone asking.
        await mosquitto.start()
        await cp.meter_values(1)
        last_power = cp.current_a(1) * 230 * 3
        async with Recorder(mosquitto) as recorder:
            await recorder.wait_for(AVAILABILITY, lambda m: m.payload == "online")
            await recorder.wait_json(CP1, lambda s: s["power_w"] == round(last_power, 1))
        async with Recorder(mosquitto) as late:  # and retained again, on the new broker
            assert (await late.wait_for(AVAILABILITY)).payload == "online"
            retained = await late.wait_for(CP1)
            assert retained.retain and retained.json()["power_w"] == round(last_power, 1)
            assert retained.json()["status"] == "Charging" and retained.json()["connected"]
            assert (await late.wait_for(SITE)).retain


async def test_unreachable_broker_never_blocks_the_gateway(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    await mosquitto.stop()
    gateway = await make_gateway(mqtt=mosquitto.section(), auth={"unknown_cards": "accept"})
    async with (
        telemetry(gateway) as (_live, publisher),
        SimCharger("CP1", gateway_url(gateway), connectors=1) as cp,
    ):
        await cp.boot()
        began = time.monotonic()
        assert await cp.tap("04A1B2C3") is not None
        for _ in range(20):
            await cp.meter_values(1)
        assert time.monotonic() - began < 5
        assert not publisher.connected
        assert publisher.buffered()["states"] <= 3
        # It connects as soon as the broker appears.
        await mosquitto.start()
        await publisher.wait_online()
        await publisher.close()
        assert not publisher.connected  # (and closing twice is harmless: telemetry() does)


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
    subprocess.run(
        [
            *command.split(),
            *("-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_with_a_client_certificate(
    make_gateway: GatewayFactory, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    server_cert, server_key = _self_signed(tmp_path, "broker")
    client_cert, client_key = _self_signed(tmp_path, "edgegw")
    trusted = tmp_path / "clients.pem"  # the broker trusts our (self-signed) client cert
    trusted.write_text(client_cert.read_text())
    await mosquitto.stop()
    port = mosquitto.add_tls_listener(trusted, server_cert, server_key)
    await mosquitto.start()
    tls = {"ca_file": str(server_cert), "cert_file": str(client_cert), "key_file": str(client_key)}
    gateway = await make_gateway(mqtt=mosquitto.section(port=port, tls=tls))
    async with Recorder(mosquitto) as recorder, telemetry(gateway) as (_live, publisher):
        await publisher.wait_online()
        await recorder.wait_for(AVAILABILITY, lambda m: m.payload == "online")
        await recorder.wait_json(SITE, lambda s: s["chargers_total"] == 2)


class ManualClock:
    """The publisher's clock, moved by the test (its pace is judged on this clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_retained_site_state_follows_changes_not_every_meter_reading(
    make_gateway: GatewayFactory, mosquitto: Mosquitto
) -> None:
    """A meter read ten times a second moves the site's currents and energy all the time; the
    retained site/state goes out for a change worth telling at once (a charger connecting),
    for measured values only once per measurement_interval, never for timestamps alone."""
    clock = ManualClock()
    async with SimMeter("eastron-sdm630") as meter:
        meter.set_currents(10.0, 10.0, 10.0)
        gateway = await make_gateway(
            site={"limit_a": 32, "margin_a": 2},
            buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
            meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.1}],
        )
        live = gateway.live
        assert live is not None
        # The daemon's own publisher, on a clock this test moves.
        mqtt = MqttConfig.model_validate(mosquitto.section(min_interval=0, measurement_interval=30))
        config = gateway.config.model_copy(update={"mqtt": mqtt})
        publisher = MqttPublisher(config, live, clock=clock)
        try:
            async with Recorder(mosquitto, SITE) as recorder:
                publisher.start()
                await publisher.wait_online()
                await recorder.wait_json(SITE, lambda s: s["current_l1_a"] == 10.0)
                before = len(recorder.on(SITE))

                # Many readings with new currents and energy: held back, not published.
                meter.set_currents(20.0, 20.0, 20.0)
                await live_reads(live, lambda site: site.current_a == (20.0, 20.0, 20.0))
                # A change worth telling goes out at once, with the latest readings in it.
                async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
                    await cp.boot()
                    state = await recorder.wait_json(SITE, lambda s: s["chargers_connected"] == 1)
                    assert state["current_l1_a"] == 20.0
                    assert len(recorder.on(SITE)) == before + 1

                    # Measured values alone go out once their interval has passed.
                    meter.set_currents(25.0, 25.0, 25.0)
                    await live_reads(live, lambda site: site.current_a == (25.0, 25.0, 25.0))
                    assert len(recorder.on(SITE)) == before + 1
                    clock.now += 31
                    meter.set_currents(26.0, 26.0, 26.0)
                    await recorder.wait_json(SITE, lambda s: s["current_l1_a"] == 26.0)
                    assert len(recorder.on(SITE)) == before + 2
        finally:
            await publisher.close()


async def live_reads(live: LiveState, predicate: Callable[[SiteLive], bool]) -> None:
    """Until the live state's site picture satisfies ``predicate`` (several readings later)."""
    changed = asyncio.Event()

    def on_change(_change: LiveChange) -> None:
        if predicate(live.site()):
            changed.set()

    unsubscribe = live.on_change(on_change)
    try:
        async with asyncio.timeout(10):
            await changed.wait()
    finally:
        unsubscribe()


async def test_a_payload_that_cannot_be_encoded_is_dropped_and_publishing_goes_on(
    mosquitto: Mosquitto,
) -> None:
    """A non-finite number in the live state (JSON has none) costs that one message, logged;
    the publish task lives on: later states and events still go out."""
    mqtt = mosquitto.section(min_interval=0, measurement_interval=0)  # each change goes out
    config = parse_config({"mqtt": mqtt, "chargers": [{"id": "CP1"}, {"id": "CP2"}]})
    live = LiveState(
        SimpleNamespace(
            config=config, sessions={}, store=None, meters=None, controller=None, authorizer=None
        )
    )
    publisher = MqttPublisher(config, live)
    refused = asyncio.Event()
    handler = _OnRecord("cannot be encoded", refused)
    logging.getLogger("edgegw.telemetry.publisher").addHandler(handler)
    try:
        async with Recorder(mosquitto) as recorder:
            publisher.start()
            await publisher.wait_online()
            live.handle(ChargerConnected(charger_id="CP1", at=1.0))
            await recorder.wait_json(CP1, lambda s: s["connected"] is True)
            live.handle(Measured(charger_id="CP1", at=2.0, connector=1, power_w=math.inf))
            async with asyncio.timeout(10):  # the publisher tried (and could not encode) it
                await refused.wait()

            live.handle(ChargerConnected(charger_id="CP2", at=3.0))
            await recorder.wait_json(CP2, lambda s: s["connected"] is True)
            await recorder.wait_json(EVENTS, lambda e: e["charger"] == "CP2")
            live.handle(Measured(charger_id="CP1", at=4.0, connector=1, power_w=7000.0))
            state = await recorder.wait_json(CP1, lambda s: s["power_w"] == 7000.0)
            assert state["connected"] is True
            assert all(
                math.isfinite(json.loads(m.payload)["power_w"] or 0) for m in recorder.on(CP1)
            )
    finally:
        logging.getLogger("edgegw.telemetry.publisher").removeHandler(handler)
        await publisher.close()


class _OnRecord(logging.Handler):
    """Sets ``event`` when a log record holding ``text`` is emitted."""

    def __init__(self, text: str, event: asyncio.Event) -> None:
        super().__init__()
        self.text, self.event = text, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()
