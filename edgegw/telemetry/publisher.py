"""Publishes the live state to the building's MQTT broker (and takes commands, if allowed).

Availability is honest: the broker holds a retained last will ``offline`` on
``<prefix>/availability``; once connected the gateway says ``online``, and on a clean stop
``stopped`` before it disconnects. A gateway that dies, or loses its network, is ``offline``
as soon as the broker notices.

The broker is never on the relay path. :class:`~edgegw.live.state.LiveState` tells the
publisher *what* changed; the publisher only notes it (a set of dirty topics, bounded by the
number of chargers) and wakes its own task, which renders the latest state when it sends.
So while the broker is down or slow nothing piles up: each state topic has at most one
pending value, the latest, and events wait in a short ring (``event_buffer``, oldest dropped).
On every (re)connect everything is published again: availability, discovery, every state
topic, since a restarted broker may have lost its retained messages.

Retained state is change-driven with a floor. A change of something discrete (a status, the
limit, the cloud link, the meter's health, a session) is sent within ``min_interval``; a state
whose only change is a measured value (currents, power, energy, which move with every meter
reading) at most once per ``measurement_interval``; one where nothing but timestamps changed is
not sent at all; and every state topic at least once per ``publish_interval``. So a site meter
read every second does not rewrite the retained ``site/state`` every second.

The connection follows aiomqtt's reconnect pattern: one reusable client, ``async with`` per
connection, ``MqttError`` ends it, and the loop reconnects with a doubling, jittered delay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgegw.config import Config
from edgegw.config.mqtttls import mqtt_tls_context
from edgegw.live.changes import LiveChange, LiveEvent, Scope
from edgegw.live.snapshot import ChargerLive, CircuitLive
from edgegw.live.state import LiveState
from edgegw.tasks import TaskOwner
from edgegw.telemetry.commands import Controls
from edgegw.telemetry.discovery import Discovery, DiscoveryMessage, SiteFeatures
from edgegw.telemetry.incoming import CommandInbox
from edgegw.telemetry.payloads import (
    charger_payload,
    circuit_payload,
    event_payload,
    site_payload,
    split_state,
)
from edgegw.telemetry.settings import MqttConfig
from edgegw.telemetry.topics import Topics

if TYPE_CHECKING:
    import aiomqtt  # imported by the methods that use it: see start()

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
_SITE = ""
"""The dirty-set key of the site state (charger keys are their ids, never empty)."""
_CIRCUIT = "\x00"
"""Circuit keys are this and the circuit's name (no charger id holds a NUL)."""
OUTGOING_QUEUE_LIMIT = 1000
"""Safety net on paho's own queue (messages not yet acknowledged by a slow broker)."""


def _dumps(payload: JsonDict) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def _encoded(payload: JsonDict, what: str) -> str | None:
    """``payload`` as JSON, or None (logged) when it cannot be: a non-finite number (JSON has
    none) or a value of no JSON type. That one message is dropped; publishing goes on."""
    try:
        return _dumps(payload)
    except (ValueError, TypeError) as exc:
        log.error("mqtt: %s cannot be encoded as JSON, not published: %s", what, exc)
        return None


async def _end(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` until it has ended.

    On Python 3.11 ``asyncio.wait_for`` (inside aiomqtt's publish and subscribe) drops a
    cancellation that arrives together with the broker's answer; asking again ends the task.
    """
    while not task.done():
        task.cancel("mqtt closing")
        await asyncio.wait({task}, timeout=1.0)


def charger_serial(charger: ChargerLive) -> str | None:
    """The serial number from the charger's BootNotification, where the live state has it."""
    serial = getattr(charger, "serial", None)  # ChargerLive.serial: newer live state only
    return serial if isinstance(serial, str) and serial else None


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


class MqttPublisher:
    """The MQTT side of the gateway. :meth:`start` once, :meth:`close` on the way out.

    ``controls`` carries out commands (only with ``mqtt.commands_enabled``); without it
    commands are neither subscribed to nor announced.
    """

    def __init__(
        self,
        config: Config,
        live: LiveState,
        *,
        controls: Controls | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.mqtt is None:
            raise ValueError("MQTT is not configured (no [mqtt] section)")
        self._config = config
        self._cfg: MqttConfig = config.mqtt
        self._live = live
        self._controls = controls if self._cfg.commands_enabled else None
        self._clock = clock
        self.topics = Topics(self._cfg.topic_prefix, self._cfg.discovery_prefix)
        site = config.site
        self._discovery = Discovery(
            self.topics,
            SiteFeatures(
                meter=any(m.role == "site" for m in config.meters),
                cloud=config.cloud is not None,
                load_capping=site is not None,
                commands=self._controls is not None,
                limit_min_a=math.floor(site.margin_a) + 1.0 if site is not None else 0.0,
                limit_max_a=min(site.limits()) if site is not None else 0.0,
                limits=tuple(x.name for x in config.limits),
                peak=config.peak is not None,
            ),
            site_name=f"edgegw {self._cfg.topic_prefix.rsplit('/', 1)[-1]}",
        )
        self._tasks = TaskOwner("mqtt")
        self._client: aiomqtt.Client | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._connection: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._up = asyncio.Event()
        self._wake = asyncio.Event()
        self._inbox = (
            None
            if self._controls is None
            else CommandInbox(
                config,
                self._cfg,
                self._controls,
                self._tasks,
                known_charger=lambda cid: cid in self._live.charger_ids(),
                wake=self._wake.set,
            )
        )
        self._online = asyncio.Event()
        self._generation = 0
        self._dirty: set[str] = set()
        self._last_sent: dict[str, float] = {}
        self._sent_state: dict[str, tuple[Any, Any]] = {}
        """Per state topic key, :func:`split_state` of what was last sent."""
        self._due: dict[str, float] = {}
        """When a state topic held back by its interval may go out."""
        self._forced: set[str] = set()
        """State topics sent at their next chance whatever changed (connect, refresh)."""
        self._events: deque[LiveEvent] = deque(maxlen=self._cfg.event_buffer)
        self._discovered: dict[str, tuple[str | None, ...]] = {}
        self._circuits: dict[str, CircuitLive] | None = None
        self._rediscover = False
        self._next_full = 0.0
        self._closing = False
        self.dropped_events = 0
        """Events dropped because the broker was away longer than the ring could hold."""
        self.published = 0
        """Messages the broker acknowledged (QoS 1/2) or took (QoS 0)."""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Read the password, set up TLS, and start connecting (in the background).

        Raises :class:`~edgegw.telemetry.settings.MqttSetupError` when the password file, the CA,
        the certificate or the key cannot be used; the broker itself being away is not an
        error (it is retried).

        aiomqtt is imported here, not with the module: the daemon imports this module on every
        site and aiomqtt (with paho) is ~1 MiB of its memory.
        """
        import aiomqtt  # noqa: PLC0415

        cfg = self._cfg
        password = cfg.read_password()
        self._client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=None if password is None else password.get_secret_value(),
            identifier=cfg.client_id,
            will=aiomqtt.Will(self.topics.availability, "offline", qos=1, retain=True),
            keepalive=cfg.keepalive,
            timeout=cfg.timeout,
            tls_context=mqtt_tls_context(cfg.tls),
            tls_insecure=None if cfg.tls is None else not cfg.tls.check_hostname,
            max_queued_outgoing_messages=OUTGOING_QUEUE_LIMIT,
            logger=logging.getLogger("edgegw.telemetry.paho"),
        )
        self._unsubscribe = self._live.on_change(self._on_live)
        self._connection = self._tasks.spawn(self._connection_loop(), "connection")
        self._publisher = self._tasks.spawn(self._publish_loop(), "publish")

    async def close(self) -> None:
        """Say ``stopped`` (if connected), disconnect cleanly, end every task."""
        import aiomqtt  # noqa: PLC0415 (loaded only where MQTT is configured)

        self._closing = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._wake.set()
        if self._publisher is not None:
            await _end(self._publisher)
        client = self._client
        if client is not None and self._up.is_set():
            try:
                async with asyncio.timeout(min(2.0, self._cfg.timeout)):
                    await client.publish(self.topics.availability, "stopped", qos=1, retain=True)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                log.warning("mqtt: could not say 'stopped' before disconnecting: %s", exc)
        if self._connection is not None:
            await _end(self._connection)  # leaving ``async with client`` disconnects cleanly
        await self._tasks.close("mqtt closing")
        self._online.clear()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def wait_online(self, timeout: float = 10.0) -> None:
        """Wait until connected and everything (availability, discovery, state) is sent."""
        async with asyncio.timeout(timeout):
            await self._online.wait()

    def buffered(self) -> dict[str, int]:
        """What waits for the broker: dirty state topics, events, command answers."""
        return {
            "states": len(self._dirty),
            "events": len(self._events),
            "results": len(self._results()),
        }

    # ------------------------------------------------------------ from the live state

    def _on_live(self, change: LiveChange) -> None:
        """Called on the relay path: note what changed and wake the publisher, nothing more."""
        if change.scope is Scope.EVENT:
            if change.event is not None:
                if self._events.maxlen is not None and len(self._events) >= self._events.maxlen:
                    self.dropped_events += 1
                if self._events.maxlen:
                    self._events.append(change.event)
        elif change.scope is Scope.SITE:
            self._dirty.add(_SITE)
            self._dirty.update(self._circuit_keys)
        elif change.charger_id:
            self._dirty.add(change.charger_id)
            self._dirty.update(self._circuit_keys)
        self._wake.set()

    @property
    def _circuit_keys(self) -> list[str]:
        return [_CIRCUIT + c.name for c in self._live.config.circuits]

    # ------------------------------------------------------------ connection

    def _where(self) -> str:
        return f"{self._cfg.host}:{self._cfg.port}"

    async def _connection_loop(self) -> None:
        import aiomqtt  # noqa: PLC0415 (loaded only where MQTT is configured)

        assert self._client is not None
        client = self._client
        delay = self._cfg.reconnect_min_delay
        failing = False
        while not self._closing:
            was_up = False
            try:
                async with client:
                    log.info("mqtt: connected to %s as %s", self._where(), self._cfg.client_id)
                    failing = False
                    delay = self._cfg.reconnect_min_delay
                    await self._subscribe(client)
                    self._generation += 1
                    was_up = True
                    self._up.set()
                    self._wake.set()
                    async for message in client.messages:
                        self._on_message(message)
            except aiomqtt.MqttError as exc:
                if self.closing:  # a failed disconnect must not swallow the cancellation
                    log.debug("mqtt: disconnect on close failed: %s", exc)
                    return
                if was_up:
                    log.warning(
                        "mqtt: connection to %s lost (%s); reconnecting",
                        self._where(),
                        exc.__cause__ or exc,
                    )
                elif not failing:
                    log.warning(
                        "mqtt: cannot connect to %s (%s); retrying with backoff", self._where(), exc
                    )
                failing = True
            finally:
                self._up.clear()
                self._online.clear()
                self._wake.set()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(self._cfg.reconnect_max_delay, delay * 2)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        if self._cfg.discovery:
            await client.subscribe(self.topics.ha_status, qos=1)
        if self._controls is not None:
            for topic in self.topics.command_filters():
                await client.subscribe(topic, qos=1)

    # ------------------------------------------------------------ publishing

    async def _publish_loop(self) -> None:
        import aiomqtt  # noqa: PLC0415 (loaded only where MQTT is configured)

        sent_generation = 0
        while not self._closing:
            await self._up.wait()
            assert self._client is not None
            generation = self._generation
            self._wake.clear()
            try:
                if sent_generation != generation:
                    await self._publish_all(self._client)
                    sent_generation = generation
                    self._online.set()
                await self._publish_pending(self._client)
            except aiomqtt.MqttError as exc:
                # Lost (the connection loop reconnects) or slow: try again shortly.
                log.debug("mqtt: publishing failed: %s", exc)
                await self._idle(self._cfg.reconnect_min_delay)
                continue
            await self._idle(self._next_due())

    async def _idle(self, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _next_due(self) -> float | None:
        """Seconds until a pending state topic may be sent again, or a full refresh is due."""
        now = self._clock()
        waits: list[float] = []
        due = [self._due[k] for k in self._dirty if k in self._due]
        if due:
            waits.append(min(due) - now)
        if self._cfg.publish_interval:
            waits.append(self._next_full - now)
        return max(0.0, min(waits)) if waits else None

    async def _send(
        self, client: aiomqtt.Client, topic: str, payload: str, *, retain: bool, qos: int
    ) -> None:
        await client.publish(topic, payload, qos=qos, retain=retain)
        self.published += 1

    async def _publish_all(self, client: aiomqtt.Client) -> None:
        await self._send(client, self.topics.availability, "online", retain=True, qos=1)
        self._discovered.clear()
        if self._cfg.discovery:
            await self._publish_site_discovery(client)
        self._force_all()
        self._next_full = self._clock() + self._cfg.publish_interval
        await self._publish_pending(client)

    def _force_all(self) -> None:
        keys = {_SITE, *self._live.charger_ids(), *self._circuit_keys}
        self._dirty.update(keys)
        self._forced.update(keys)
        self._last_sent.clear()

    async def _publish_site_discovery(self, client: aiomqtt.Client) -> None:
        await self._send_discovery(client, self._discovery.site())

    async def _send_discovery(
        self, client: aiomqtt.Client, messages: list[DiscoveryMessage]
    ) -> None:
        for message in messages:
            text = _encoded(message.payload, f"discovery {message.topic}")
            if text is not None:
                await self._send(client, message.topic, text, retain=True, qos=1)

    async def _publish_pending(self, client: aiomqtt.Client) -> None:
        cfg = self._cfg
        now = self._clock()
        self._circuits = None  # read again, once, when a circuit is due
        if cfg.publish_interval and now >= self._next_full:
            self._next_full = now + cfg.publish_interval
            self._force_all()
        if self._rediscover and cfg.discovery:
            self._rediscover = False
            self._discovered.clear()
            await self._publish_site_discovery(client)
            self._force_all()
        while self._events:  # removed only once the broker took it: at least once
            payload = event_payload(self._events[0], cards=cfg.publish_cards)
            text = _encoded(payload, f"event {payload.get('event')}")
            if text is not None:
                await self._send(client, self.topics.events, text, retain=False, qos=cfg.qos)
            self._events.popleft()
        results = self._results()
        while results:
            topic, result = results[0]
            text = _encoded(result, f"result on {topic}")
            if text is not None:
                await self._send(client, topic, text, retain=False, qos=1)
            results.popleft()
        for key in sorted(self._dirty):
            state_payload = self._state_payload(key)
            if state_payload is None:
                self._dirty.discard(key)
                continue
            state = split_state(state_payload)
            sent = self._sent_state.get(key)
            forced = key in self._forced
            if not forced and sent == state:  # nothing but timestamps moved
                self._dirty.discard(key)
                self._due.pop(key, None)
                continue
            measured_only = not forced and sent is not None and sent[0] == state[0]
            interval = cfg.min_interval
            if measured_only:
                interval = max(interval, cfg.measurement_interval)
            last = self._last_sent.get(key)
            if last is not None and now - last < interval:
                self._due[key] = last + interval
                continue
            self._dirty.discard(key)
            self._due.pop(key, None)
            text = _encoded(state_payload, f"the state of {key or 'the site'}")
            if text is None:  # dropped; the next change (or refresh) tries again
                continue
            try:
                await self._publish_state(client, key, text)
            except BaseException:
                self._dirty.add(key)
                raise
            self._forced.discard(key)
            self._sent_state[key] = state
            self._last_sent[key] = self._clock()

    def _state_payload(self, key: str) -> JsonDict | None:
        """The state of the site (key "") or of a charger, as published; None if gone."""
        if key == _SITE:
            snapshot = self._live.snapshot()
            return site_payload(snapshot.site, snapshot.limits, snapshot.peak)
        if key.startswith(_CIRCUIT):
            circuit = self._circuit(key)
            return None if circuit is None else circuit_payload(circuit)
        charger = self._live.charger(key)
        if charger is None:
            return None
        return charger_payload(charger, cards=self._cfg.publish_cards)

    def _circuit(self, key: str) -> CircuitLive | None:
        """The circuit of a dirty-set key (the live circuits read once per publishing pass)."""
        if self._circuits is None:
            self._circuits = {c.name: c for c in self._live.circuits()}
        return self._circuits.get(key[len(_CIRCUIT) :])

    async def _publish_state(self, client: aiomqtt.Client, key: str, payload: str) -> None:
        cfg = self._cfg
        if key == _SITE:
            topic = self.topics.site_state
        elif key.startswith(_CIRCUIT):
            name = key[len(_CIRCUIT) :]
            if cfg.discovery and key not in self._discovered:
                await self._send_discovery(client, self._discovery.circuit(name))
                self._discovered[key] = ()
            topic = self.topics.circuit_state(name)
        else:
            charger = self._live.charger(key)
            if charger is None:
                return
            if cfg.discovery:
                serial = charger_serial(charger)
                seen = (charger.label, charger.vendor, charger.model, charger.firmware, serial)
                if self._discovered.get(key) != seen:
                    await self._send_discovery(
                        client,
                        self._discovery.charger(
                            key,
                            label=charger.label,
                            vendor=charger.vendor,
                            model=charger.model,
                            firmware=charger.firmware,
                            serial=serial,
                        ),
                    )
                    self._discovered[key] = seen
            topic = self.topics.charger_state(key)
        await self._send(client, topic, payload, retain=cfg.retain, qos=cfg.qos)

    # ------------------------------------------------------------ incoming

    def _results(self) -> deque[tuple[str, JsonDict]]:
        """Command answers waiting to be sent."""
        return self._inbox.results if self._inbox is not None else deque()

    def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = _payload_bytes(message.payload)
        if topic == self.topics.ha_status:
            if payload.strip() == b"online":  # Home Assistant (re)started: announce again
                self._rediscover = True
                self._wake.set()
            return
        route = self.topics.parse_command(topic)
        if route is not None and self._inbox is not None:
            self._inbox.take(route, self.topics.result_for(topic), payload, bool(message.retain))
