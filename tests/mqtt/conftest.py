"""A real mosquitto for the MQTT tests, and a subscriber that records what it sees.

Each test gets its own broker on a free loopback port, with authentication on (a password
file made by ``mosquitto_passwd``) and no persistence, so a restart loses retained messages
just like a broker that was replaced. Readiness comes from mosquitto's own log line, not a
sleep. The tests are skipped, saying why, when mosquitto is not installed
(Debian: ``apt-get install mosquitto``).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import json
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edgegw.daemon import Gateway
from edgegw.livestate import LiveState
from edgegw.services.charger_actions import ChargerActions, LiveSessions
from edgegw.tasks import TaskOwner
from edgegw.telemetry.commands import GatewayControls
from edgegw.telemetry.publisher import MqttPublisher

USER = "edgegw"
PASSWORD = "broker-s3cret"
PREFIX = "edgegw/test"
_READY_LINE = b" running"
_ids = itertools.count()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    """One mosquitto process; :meth:`stop` and :meth:`start` again keep its port."""

    def __init__(self, directory: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.directory = directory
        self.password_file = directory / "broker.passwd"
        self.client_password_file = directory / "mqtt-password"
        self.client_password_file.write_text(PASSWORD + "\n")
        subprocess.run(
            ["mosquitto_passwd", "-c", "-b", str(self.password_file), USER, PASSWORD],
            check=True,
            capture_output=True,
        )
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"user {getpass.getuser()}\n"  # root would drop to 'mosquitto' and lose tmp_path
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.password_file}\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        self.log: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks = TaskOwner("mosquitto")

    def add_tls_listener(self, cafile: Path, certfile: Path, keyfile: Path) -> int:
        """A second listener, TLS with client certificates required; returns its port."""
        port = free_port()
        with self.config.open("a") as config:
            config.write(
                f"listener {port} 127.0.0.1\n"
                f"cafile {cafile}\ncertfile {certfile}\nkeyfile {keyfile}\n"
                "require_certificate true\n"
            )
        return port

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            "mosquitto",
            "-c",
            str(self.config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._proc.stderr is not None
        stderr = self._proc.stderr
        async with asyncio.timeout(10):
            while True:
                line = await stderr.readline()
                if not line:
                    raise RuntimeError("mosquitto exited:\n" + "\n".join(self.log))
                self.log.append(line.decode(errors="replace").rstrip())
                if _READY_LINE in line:
                    break
        self._tasks.spawn(self._drain(stderr), f"log:{self._proc.pid}")

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.log.append(line.decode(errors="replace").rstrip())

    def pause(self) -> None:
        """SIGSTOP: a broker that accepts bytes into its socket buffer and answers nothing."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        """Kill it: clients see their connections close (mosquitto 2.0.11 may take seconds
        to act on a SIGTERM that arrives right after it started)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.kill()
        await proc.wait()
        await self._tasks.close()
        self._tasks = TaskOwner("mosquitto")

    def section(self, **overrides: Any) -> dict[str, Any]:
        """An ``[mqtt]`` config section for this broker, quick to reconnect, for tests."""
        return {
            "host": self.host,
            "port": self.port,
            "username": USER,
            "password_file": str(self.client_password_file),
            "client_id": f"edgegw-test-{next(_ids)}",
            "topic_prefix": PREFIX,
            "min_interval": 0.05,
            "measurement_interval": 0.05,  # tests of the pace set their own
            "publish_interval": 0,
            "reconnect_min_delay": 0.05,
            "reconnect_max_delay": 0.2,
            "keepalive": 5,
            "timeout": 3,
            **overrides,
        }


@pytest.fixture
async def mosquitto(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto is not installed (Debian package 'mosquitto')")
    broker = Mosquitto(tmp_path)
    await broker.start()
    yield broker
    await broker.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: str
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """A separate MQTT client that subscribes and records every message, in order."""

    def __init__(self, broker: Mosquitto, topic_filter: str = f"{PREFIX}/#") -> None:
        self._broker = broker
        self._filter = topic_filter
        self.messages: list[Received] = []
        self._progress = asyncio.Event()
        self._tasks = TaskOwner("recorder")
        self.client = aiomqtt.Client(
            broker.host,
            broker.port,
            username=USER,
            password=PASSWORD,
            identifier=f"recorder-{next(_ids)}",
            timeout=5,
        )

    async def __aenter__(self) -> Recorder:
        await self.client.__aenter__()
        await self.client.subscribe(self._filter, qos=1)
        self._tasks.spawn(self._read(), "read")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._tasks.close()
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            text = payload.decode() if isinstance(payload, bytes | bytearray) else str(payload)
            self.messages.append(Received(message.topic.value, text, message.retain))
            event, self._progress = self._progress, asyncio.Event()
            event.set()

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[Received], bool] = lambda _m: True,
        timeout: float = 10,
    ) -> Received:
        """The first message (already received or to come) on ``topic`` that matches."""

        def found() -> Received | None:
            for message in self.messages:
                if message.topic == topic and predicate(message):
                    return message
            return None

        await self.wait_until(lambda: found() is not None, timeout)
        result = found()
        assert result is not None
        return result

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        """Until ``predicate()`` holds, re-checked on every message."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._progress.wait()

    async def wait_json(
        self, topic: str, predicate: Callable[[Any], bool], timeout: float = 10
    ) -> Any:
        """The first JSON payload on ``topic`` for which ``predicate`` holds."""
        message = await self.wait_for(topic, lambda m: bool(predicate(m.json())), timeout)
        return message.json()

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    def latest(self, topic: str) -> Received | None:
        matching = self.on(topic)
        return matching[-1] if matching else None


async def publish(broker: Mosquitto, topic: str, payload: str, *, retain: bool = False) -> None:
    """Publish one message from a third client (a building system sending a command)."""
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        username=USER,
        password=PASSWORD,
        identifier=f"sender-{next(_ids)}",
        timeout=5,
    ) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


@asynccontextmanager
async def telemetry(
    gateway: Gateway, *, refresh_interval: float = 0.05
) -> AsyncIterator[tuple[LiveState, MqttPublisher]]:
    """LiveState and the publisher of a started gateway: the daemon's own once it wires them
    (as ``gateway.live`` and ``gateway.mqtt``), else wired here the same way."""
    own_live, own_mqtt = getattr(gateway, "live", None), getattr(gateway, "mqtt", None)
    if isinstance(own_live, LiveState) and isinstance(own_mqtt, MqttPublisher):
        try:
            yield own_live, own_mqtt
        finally:
            await own_mqtt.close()  # the tests look at what a clean stop leaves behind
        return
    live = LiveState(gateway, refresh_interval=refresh_interval, backlog_interval=0.1)
    hub = gateway.hub
    assert hub is not None
    gateway.hub = hub.extended(live)  # for the chargers that connect from now on
    live.start()
    actions = ChargerActions(gateway.call, gateway.chargers, LiveSessions(live), None)
    controls = GatewayControls(actions, None)
    publisher = MqttPublisher(gateway.config, live, controls=controls)
    publisher.start()
    try:
        yield live, publisher
    finally:
        await publisher.close()
        await live.close()
        gateway.hub = hub
