"""An external limit signalled on an MQTT topic of a real mosquitto (energy.external_sources):
retained states count, unreadable payloads and a lost broker keep the last state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from edgegw.config import parse_config
from edgegw.energy.allocator import PerPhase
from edgegw.energy.external import ExternalLimits
from edgegw.energy.external_sources import ExternalLimitService
from edgegw.store.db import Database
from edgegw.store.limitlog import LimitLog, activations
from tests.mqtt.conftest import PASSWORD, USER, Mosquitto

TOPIC = "site/dso/dimming"


class Sink:
    """Records what the load controller would be told (its ``lower_limit``)."""

    def __init__(self) -> None:
        self.lowered: dict[tuple[str, str | None], PerPhase] = {}
        self.calls = 0

    def lower_limit(self, source: str, node: str | None, limit_a: PerPhase | None) -> None:
        self.calls += 1
        if limit_a is None:
            self.lowered.pop((source, node), None)
        else:
            self.lowered[(source, node)] = limit_a


async def _publish(broker: Mosquitto, payload: str, *, retain: bool) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, username=USER, password=PASSWORD, identifier="dso-box"
    ) as client:
        await client.publish(TOPIC, payload, qos=1, retain=retain)


async def _until(predicate: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110 - the service has no event to wait on
            await asyncio.sleep(0.02)


async def test_an_mqtt_topic_dims_a_circuit_and_keeps_its_state(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = parse_config(
        {
            "site": {"limit_a": 100},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"name": "grid", "profile": "eastron-sdm630"}],
            "circuits": [{"name": "steuve", "limit_a": 63}],
            "chargers": [{"id": "CP1", "circuit": "steuve"}, {"id": "CP2", "circuit": "steuve"}],
            "mqtt": mosquitto.section(),
            "limits": [
                {
                    "name": "dso",
                    "source": "mqtt",
                    "topic": TOPIC,
                    "circuit": "steuve",
                    "para14a": True,
                }
            ],
        }
    )
    db = await Database.open(tmp_path / "gw.db")
    sink = Sink()
    limits = ExternalLimits(config, sink, LimitLog(db))
    state = limits.states["dso"]
    await _publish(mosquitto, "1", retain=True)  # the box's state, kept by the broker
    service = ExternalLimitService(config, limits, {})
    service.start()
    try:
        await _until(lambda: state.activation_id is not None, "active")
        amps = 7.56 * 1000 / (3 * 230)  # two chargers: 7.56 kW
        lowered = sink.lowered[("dso", "steuve")]
        # Never below P_min: rounded up to the 0.1 A step of a limit, plus 0.1 A for the
        # second charger (each car's share is rounded down to 0.1 A).
        assert amps <= lowered[0] <= amps + 0.1 + 0.1

        await _publish(mosquitto, "what?", retain=False)
        await _until(lambda: state.last_error is not None, "unreadable")
        assert state.active and ("dso", "steuve") in sink.lowered

        await mosquitto.stop()  # the broker goes away: the dimming holds
        await _until(lambda: "broker" in (state.last_error or ""), "broker lost")
        assert state.active and ("dso", "steuve") in sink.lowered
        await mosquitto.start()  # it comes back without the retained state (no persistence)

        # A box publishes its state retained: it reaches the client whenever it resubscribes.
        await _publish(mosquitto, '{"active": false}', retain=True)
        await _until(lambda: state.activation_id is None, "released")
        assert ("dso", "steuve") not in sink.lowered
        (row,) = await activations(db.conn, para14a_only=True)
        assert row.ended_at is not None and row.chargers == 2
    finally:
        await service.close()
        await db.close()
