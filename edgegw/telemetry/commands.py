"""Commands from the building over MQTT: parsed strictly, carried out, always answered.

Commands are off unless ``mqtt.commands_enabled``. Three exist:

``<prefix>/site/limit/set``
    ``{"limit_a": 20, "duration_s": 3600}``, or a bare number: a temporary site limit (one
    number or ``[L1, L2, L3]``), above the margin and never above the configured limit;
    ``{"limit_a": null}`` ends it early.
``<prefix>/charger/<id>/enabled/set``
    ``{"enabled": false}`` (or a bare ``true``/``false``): ChangeAvailability of the whole
    charger; a running session finishes first (the charger answers Scheduled).
``<prefix>/charger/<id>/stop/set``
    ``{}`` stops every session of the charger, ``{"connector": 2}`` or
    ``{"transaction_id": 17}`` one of them (RemoteStopTransaction; an OCPP 2.x charger:
    RequestStopTransaction, its transaction ids are strings, its connectors EVSEs).

A command is carried out by the gateway's services (:mod:`edgegw.services`), the same use cases
the control socket's ops run, so it is recorded the same way (``action.*`` and
``site.temporary_limit`` events, ``"via": "MQTT"``).

Any payload may carry a ``request_id`` (a string up to 64 characters), echoed in the answer.
Every command gets exactly one answer on ``.../<command>/result``: ``{"ok": true, ...}`` or
``{"ok": false, "reason": "..."}``, so a refusal is never silent.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from edgegw.config import SiteConfig
from edgegw.services.caretaker import SiteLimits
from edgegw.services.charger_actions import ChargerActions
from edgegw.services.errors import NotConnected, ServiceError
from edgegw.services.ports import VIA_MQTT
from edgegw.telemetry.topics import CommandRoute

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
PerPhase = tuple[float, float, float]

MAX_PAYLOAD = 1024
DEFAULT_LIMIT_DURATION = 3600.0


class CommandRefused(Exception):
    """The command was not carried out; the message says why, for the person who sent it."""


@dataclass(frozen=True, slots=True)
class SiteLimit:
    limit_a: PerPhase | None
    """None: end the temporary limit."""
    duration_s: float


@dataclass(frozen=True, slots=True)
class EnableCharger:
    charger_id: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class StopSession:
    charger_id: str
    connector: int | None = None
    transaction_id: int | str | None = None


Command = SiteLimit | EnableCharger | StopSession


@dataclass(frozen=True, slots=True)
class Parsed:
    command: Command
    request_id: str | None


# --------------------------------------------------------------------------------------------
# Parsing


def _decode(payload: bytes | str) -> Any:
    raw = payload.encode() if isinstance(payload, str) else payload
    if len(raw) > MAX_PAYLOAD:
        raise CommandRefused(f"payload is {len(raw)} bytes; at most {MAX_PAYLOAD} are accepted")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandRefused("payload is not UTF-8 text") from None
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandRefused(f"payload is not JSON: {exc.msg} at character {exc.pos}") from None


def request_id_of(payload: bytes | str) -> str | None:
    """The ``request_id`` of a payload, if it has a usable one (to answer a refused command)."""
    try:
        data = _decode(payload)
    except CommandRefused:
        return None
    request_id = data.get("request_id") if isinstance(data, Mapping) else None
    return request_id if isinstance(request_id, str) and len(request_id) <= 64 else None


def _fields(data: Any, allowed: set[str], shorthand: str | None) -> tuple[JsonDict, str | None]:
    """The payload as an object (a bare value stands for ``shorthand``) and its request id."""
    if not isinstance(data, Mapping):
        if shorthand is None:
            raise CommandRefused("payload must be a JSON object")
        data = {shorthand: data}
    unknown = sorted(set(data) - allowed - {"request_id"})
    if unknown:
        raise CommandRefused(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}; "
            "allowed: " + ", ".join(sorted(allowed | {"request_id"}))
        )
    request_id = data.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 64):
        raise CommandRefused("request_id must be a string of at most 64 characters")
    return dict(data), request_id


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CommandRefused(f"{name} must be a number")
    return float(value)


def _integer(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CommandRefused(f"{name} must be an integer >= {minimum}")
    return value


def parse_command(
    route: CommandRoute,
    payload: bytes | str,
    *,
    site: SiteConfig | None,
    max_duration: float,
    known_charger: Callable[[str], bool],
) -> Parsed:
    """Validate one command; raise :class:`CommandRefused` with the reason."""
    data = _decode(payload)
    if route.charger_id is None:
        if route.name != "limit":
            raise CommandRefused(f"unknown site command {route.name!r}; the site has: limit")
        fields, request_id = _fields(data, {"limit_a", "duration_s"}, "limit_a")
        return Parsed(_site_limit(fields, site, max_duration), request_id)
    if not known_charger(route.charger_id):
        raise CommandRefused(f"unknown charger {route.charger_id!r}")
    if route.name == "enabled":
        fields, request_id = _fields(data, {"enabled"}, "enabled")
        enabled = fields.get("enabled")
        if not isinstance(enabled, bool):
            raise CommandRefused("enabled must be true or false")
        return Parsed(EnableCharger(route.charger_id, enabled), request_id)
    if route.name == "stop":
        fields, request_id = _fields(data, {"connector", "transaction_id"}, None)
        connector = fields.get("connector")
        tx = fields.get("transaction_id")
        if connector is not None and tx is not None:
            raise CommandRefused("give connector or transaction_id, not both")
        return Parsed(
            StopSession(
                route.charger_id,
                None if connector is None else _integer(connector, "connector", 1),
                None if tx is None else _transaction_id(tx),
            ),
            request_id,
        )
    raise CommandRefused(f"unknown charger command {route.name!r}; a charger has: enabled, stop")


def _transaction_id(value: Any) -> int | str:
    """A 1.6 transaction id (an integer) or a 2.x one (the charger's string, 1..36 chars)."""
    if isinstance(value, str):
        if not 1 <= len(value) <= 36:
            raise CommandRefused("transaction_id as text must be 1 to 36 characters")
        return value
    return _integer(value, "transaction_id", -(2**31))


def _site_limit(fields: JsonDict, site: SiteConfig | None, max_duration: float) -> SiteLimit:
    if site is None:
        raise CommandRefused("load capping is off on this site (no [site] section)")
    if "limit_a" not in fields:
        raise CommandRefused("limit_a is missing")
    duration = fields.get("duration_s", min(DEFAULT_LIMIT_DURATION, max_duration))
    duration = _number(duration, "duration_s")
    if not 0 < duration <= max_duration:
        raise CommandRefused(f"duration_s must be above 0 and at most {max_duration:g} s")
    value = fields["limit_a"]
    if value is None:
        return SiteLimit(None, duration)
    if isinstance(value, list):
        if len(value) != 3:
            raise CommandRefused("limit_a must be one number or [L1, L2, L3]")
        a, b, c = (_number(v, "limit_a") for v in value)
        limit: PerPhase = (a, b, c)
    else:
        one = _number(value, "limit_a")
        limit = (one, one, one)
    configured = site.limits()
    for phase, (wanted, fuse) in enumerate(zip(limit, configured, strict=True), 1):
        if wanted > fuse:
            raise CommandRefused(
                f"limit_a on L{phase} ({wanted:g} A) is above the configured limit ({fuse:g} A); "
                "a temporary limit can only lower it"
            )
        if wanted <= site.margin_a:
            raise CommandRefused(
                f"limit_a on L{phase} ({wanted:g} A) must be above the margin ({site.margin_a:g} A)"
            )
    return SiteLimit(limit, duration)


# --------------------------------------------------------------------------------------------
# Carrying out


class Controls(Protocol):
    """Carries out validated commands; returns a short description, or raises CommandRefused."""

    async def set_site_limit(self, command: SiteLimit) -> str: ...

    async def set_charger_enabled(self, command: EnableCharger) -> str: ...

    async def stop_session(self, command: StopSession) -> str: ...


class GatewayControls:
    """:class:`Controls` over the gateway's services: the charger ``actions`` (the same use
    cases the control socket runs, recorded the same way) and the caretaker's temporary
    ``site_limits`` (None: no load capping on this site)."""

    def __init__(self, actions: ChargerActions, site_limits: SiteLimits | None) -> None:
        self._actions = actions
        self._site_limits = site_limits

    async def set_site_limit(self, command: SiteLimit) -> str:
        limits = self._site_limits
        if limits is None or not limits.available:
            raise CommandRefused("load capping is off on this site (no [site] section)")
        with _refused():
            duration = None if command.limit_a is None else command.duration_s
            limits.set_temporary_limit(command.limit_a, duration, via=VIA_MQTT)
        if command.limit_a is None:
            return "temporary limit ended"
        values = command.limit_a
        amps = f"{values[0]:g}" if len(set(values)) == 1 else "/".join(f"{v:g}" for v in values)
        return f"limit {amps} A for {command.duration_s:g} s"

    async def set_charger_enabled(self, command: EnableCharger) -> str:
        kind = "Operative" if command.enabled else "Inoperative"
        with _refused():
            done = await self._actions.set_availability(
                command.charger_id, command.enabled, via=VIA_MQTT
            )
        if done.status == "Accepted":
            return f"{command.charger_id} is {kind}"
        if done.status == "Scheduled":
            return f"{command.charger_id} becomes {kind} when its session ends"
        raise CommandRefused(
            f"{command.charger_id} answered ChangeAvailability with {done.answer.get('status')}"
        )

    async def stop_session(self, command: StopSession) -> str:
        with _refused():
            stopped = await self._actions.stop_sessions(
                command.charger_id,
                connector=command.connector,
                transaction_id=command.transaction_id,
                via=VIA_MQTT,
            )
        done = [(s, f"connector {s.connector} (transaction {s.transaction_id})") for s in stopped]
        accepted = [where for s, where in done if s.status == "Accepted"]
        refused = [where for s, where in done if s.status != "Accepted"]
        if refused:
            raise CommandRefused(
                f"{command.charger_id} refused to stop {', '.join(refused)}"
                + (f"; stopping {', '.join(accepted)}" if accepted else "")
            )
        return f"stopping {', '.join(accepted)}"


@contextmanager
def _refused() -> Iterator[None]:
    """A use case's refusal as a refused command (a charger away says so in few words)."""
    try:
        yield
    except NotConnected as exc:
        raise CommandRefused(f"{exc.charger_id} is not connected") from None
    except ServiceError as exc:
        raise CommandRefused(str(exc)) from None


async def execute(controls: Controls, command: Command) -> str:
    if isinstance(command, SiteLimit):
        return await controls.set_site_limit(command)
    if isinstance(command, EnableCharger):
        return await controls.set_charger_enabled(command)
    return await controls.stop_session(command)
