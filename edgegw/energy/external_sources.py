"""The readers of the ``[[limits]]`` signals, and the service that runs them.

* ``modbus``: one register (function 3 or 4), or a relay's coil or discrete input (1 or 2,
  read as 0 or 1), on a ``[buses.*]`` bus through the meters' own
  :class:`~edgegw.energy.modbusbus.ModbusBus` (a control box on the meter's RS-485 line shares
  its lock and silent interval); active when it equals ``active_value``, or is not 0.
* ``gpio``: an input's value file (Linux sysfs ``/sys/class/gpio/gpioN/value``, or any file
  holding 0 or 1, e.g. one a libgpiod monitor writes); ``active_low`` inverts it.
* ``mqtt``: a topic on the ``[mqtt]`` broker, through one subscriber of its own (the
  publisher ignores retained messages, as commands must; a signal is a state, so a retained
  one counts). Payload ``1``/``0``, ``true``/``false``, ``on``/``off``, or ``{"active": …}``.

A read that fails is reported to :class:`~edgegw.energy.external.ExternalLimits` (the last
state holds); the MQTT subscriber reconnects with back-off like the publisher.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

from edgegw.config import Config
from edgegw.config.limits import LimitConfig
from edgegw.config.mqtttls import MqttSetupError, mqtt_tls_context
from edgegw.energy.external import ExternalLimits
from edgegw.energy.modbusbus import ModbusBus
from edgegw.energy.modbuserrors import ModbusError
from edgegw.tasks import TaskOwner

log = logging.getLogger("edgegw.energy.limits")

Reader = Callable[[], Awaitable[bool]]

_ON = {"1", "true", "on", "active"}
_OFF = {"0", "false", "off", "inactive"}


def register_reader(limit: LimitConfig, bus: ModbusBus) -> Reader:
    """Reads ``limit``'s register, coil or input: active when it equals ``active_value`` (or
    is not 0)."""
    assert limit.address is not None

    async def read() -> bool:
        (word,) = await bus.read(limit.unit_id, limit.function_code, limit.address or 0, 1)
        if limit.active_value is None:
            return word != 0
        return word == limit.active_value

    return read


def file_reader(limit: LimitConfig) -> Reader:
    """Reads ``limit``'s GPIO value file: 1 or 0 (``active_low`` inverts)."""
    assert limit.path is not None
    path = limit.path

    async def read() -> bool:
        text = (await asyncio.to_thread(path.read_text)).strip()
        if text not in ("0", "1"):
            raise ValueError(f"{path} holds {text[:20]!r}, not 0 or 1")
        return (text == "1") != limit.active_low

    return read


def parse_payload(payload: bytes) -> bool | None:
    """A signal's MQTT payload: True, False, or None when it says neither."""
    try:
        text = payload.decode().strip()
    except UnicodeDecodeError:
        return None
    if text.lower() in _ON:
        return True
    if text.lower() in _OFF:
        return False
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    if isinstance(decoded, dict) and isinstance(decoded.get("active"), bool):
        return bool(decoded["active"])
    return None


class ExternalLimitService:
    """Runs every ``[[limits]]`` reader, feeding ``limits``.

    ``buses`` are the meters' buses by name (shared); a bus only a limit uses is opened here
    and closed by :meth:`close`.
    """

    def __init__(
        self, config: Config, limits: ExternalLimits, buses: Mapping[str, ModbusBus]
    ) -> None:
        self._config = config
        self._limits = limits
        self._tasks = TaskOwner("limits")
        self._own_buses: dict[str, ModbusBus] = {}
        self._readers: list[tuple[LimitConfig, Reader]] = []
        self._topics: dict[str, list[str]] = {}
        for limit in config.limits:
            if limit.source == "modbus":
                assert limit.bus is not None
                bus = buses.get(limit.bus) or self._own_buses.get(limit.bus)
                if bus is None:
                    bus = ModbusBus(config.buses[limit.bus], name=limit.bus)
                    self._own_buses[limit.bus] = bus
                self._readers.append((limit, register_reader(limit, bus)))
            elif limit.source == "gpio":
                self._readers.append((limit, file_reader(limit)))
            else:
                assert limit.topic is not None
                self._topics.setdefault(limit.topic, []).append(limit.name)

    def start(self) -> None:
        for limit, reader in self._readers:
            self._tasks.spawn(self._poll(limit, reader), f"limit/{limit.name}")
        if self._topics:
            self._tasks.spawn(self._mqtt(), "limits/mqtt")

    async def close(self) -> None:
        await self._tasks.close("external limits closing")
        for bus in self._own_buses.values():
            await bus.close()

    async def _poll(self, limit: LimitConfig, read: Reader) -> None:
        while True:
            try:
                active = await read()
            except (ModbusError, OSError, ValueError) as exc:
                self._limits.read_failed(limit.name, str(exc))
            else:
                await self._limits.signal(limit.name, active)
            await asyncio.sleep(limit.poll_interval)

    async def _mqtt(self) -> None:
        import aiomqtt  # noqa: PLC0415 (~1 MiB: loaded only where limits come over MQTT)

        cfg = self._config.mqtt
        assert cfg is not None
        try:
            password = cfg.read_password()
            context = mqtt_tls_context(cfg.tls)  # the publisher's: [mqtt]'s CA and certificate
        except MqttSetupError as exc:
            # Files a restart or reload must fix: the limits say why, their last state holds.
            log.error("external limits on MQTT cannot connect: %s", exc)
            for names in self._topics.values():
                for name in names:
                    self._limits.read_failed(name, str(exc))
            return
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=None if password is None else password.get_secret_value(),
            identifier=f"{cfg.client_id}-limits",
            keepalive=cfg.keepalive,
            timeout=cfg.timeout,
            tls_context=context,
            tls_insecure=None if cfg.tls is None else not cfg.tls.check_hostname,
            logger=logging.getLogger("edgegw.energy.limits.paho"),
        )
        delay = cfg.reconnect_min_delay
        while True:
            try:
                async with client:
                    for topic in self._topics:
                        await client.subscribe(topic, qos=1)
                    delay = cfg.reconnect_min_delay
                    async for message in client.messages:
                        await self._message(str(message.topic), message.payload)
                why = "connection closed"
            except aiomqtt.MqttError as exc:
                why = str(exc)
            for names in self._topics.values():
                for name in names:
                    self._limits.read_failed(name, f"MQTT broker: {why}")
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(cfg.reconnect_max_delay, delay * 2)

    async def _message(self, topic: str, payload: object) -> None:
        names = self._topics.get(topic, [])
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        active = parse_payload(raw)
        for name in names:
            if active is None:
                self._limits.read_failed(name, f"unreadable payload on {topic}: {raw[:40]!r}")
            else:
                await self._limits.signal(name, active)
