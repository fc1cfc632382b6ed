"""A gateway with MQTT telemetry in its own process, for tests that SIGKILL it.

``python -m tests.mqtt.gateway_proc <config.toml>`` starts the gateway, its live state and the
MQTT publisher (wired as the daemon wires them), prints ``ready`` once the publisher said
``online``, and runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edgegw.config import load_config
from edgegw.daemon import Gateway
from edgegw.livestate import LiveState
from edgegw.telemetry.publisher import MqttPublisher


async def main(path: Path) -> None:
    config = load_config(path)
    gateway = Gateway(config)
    await gateway.start()
    live = LiveState(gateway)
    assert gateway.hub is not None
    gateway.hub = gateway.hub.extended(live)  # before any charger connects
    live.start()
    publisher = MqttPublisher(config, live)
    publisher.start()
    await publisher.wait_online()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
