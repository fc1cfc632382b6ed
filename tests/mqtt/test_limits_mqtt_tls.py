"""The MQTT limit subscriber's TLS is the publisher's (edgegw.config.mqtttls): through a real
mosquitto's TLS listener with client certificates it follows a signal, and a certificate it
cannot use is reported on the limit in words, its last state held."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from edgegw.config import Config, parse_config
from edgegw.energy.external import ExternalLimits
from edgegw.energy.external_sources import ExternalLimitService
from edgegw.store.db import Database
from edgegw.store.limitlog import LimitLog
from tests.mqtt.conftest import Mosquitto
from tests.mqtt.test_limits_mqtt import TOPIC, Sink, _publish, _until
from tests.mqtt.test_publisher import _self_signed


def _config(mqtt: dict[str, Any]) -> Config:
    return parse_config(
        {
            "site": {"limit_a": 100},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"name": "grid", "profile": "eastron-sdm630"}],
            "chargers": [{"id": "CP1"}],
            "mqtt": mqtt,
            "limits": [{"name": "relay", "source": "mqtt", "topic": TOPIC, "limit_a": 40}],
        }
    )


async def test_the_limit_subscriber_connects_with_the_client_certificate(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    server_cert, server_key = _self_signed(tmp_path, "broker")
    client_cert, client_key = _self_signed(tmp_path, "edgegw")
    trusted = tmp_path / "clients.pem"
    trusted.write_text(client_cert.read_text())
    await mosquitto.stop()
    port = mosquitto.add_tls_listener(trusted, server_cert, server_key)
    await mosquitto.start()
    tls = {"ca_file": str(server_cert), "cert_file": str(client_cert), "key_file": str(client_key)}
    config = _config(mosquitto.section(port=port, tls=tls))
    db = await Database.open(tmp_path / "gw.db")
    sink = Sink()
    limits = ExternalLimits(config, sink, LimitLog(db))
    state = limits.states["relay"]
    await _publish(mosquitto, "1", retain=True)  # on the plain listener, kept by the broker
    service = ExternalLimitService(config, limits, {})
    service.start()
    try:
        await _until(lambda: ("relay", None) in sink.lowered, "active over TLS")
        assert sink.lowered[("relay", None)] == (40.0, 40.0, 40.0)
        assert state.last_error is None
    finally:
        await service.close()
        await db.close()


async def test_an_unusable_certificate_is_reported_on_the_limit(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    config = _config(mosquitto.section(tls={"cert_file": str(garbage), "key_file": str(garbage)}))
    db = await Database.open(tmp_path / "gw.db")
    limits = ExternalLimits(config, Sink(), LimitLog(db))
    state = limits.states["relay"]
    service = ExternalLimitService(config, limits, {})
    service.start()
    try:
        await _until(lambda: state.last_error is not None, "reported")
        assert (state.last_error or "").startswith("mqtt.tls: cannot use the CA, certificate")
        assert not state.active
    finally:
        await service.close()
        await db.close()
