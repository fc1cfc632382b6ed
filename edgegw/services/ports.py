"""The narrow dependencies services take: what each needs from the running daemon, no more.

The composition root (:mod:`edgegw.daemon`) builds them from its parts; tests build them from
real parts too (a real store, a real gateway's ``call``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from edgegw.config import ChargerConfig, Config
from edgegw.ocpp.versions import OCPP16
from edgegw.services.errors import NotConnected, NotFound
from edgegw.store.events import EventRecorder

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]

VIA_CONTROL: Final = "the control socket"
VIA_MQTT: Final = "MQTT"
"""Who asked, as a service logs it and records it in an event's ``via``."""


class ChargerCall(Protocol):
    """Send the gateway's own OCPP call to a connected charger (``Gateway.call``): raises
    ``CallFailed`` on a CALLERROR or no answer, ``LookupError`` when it is not connected."""

    def __call__(
        self,
        charger_id: str,
        action: str,
        payload: JsonDict,
        timeout: float = ...,
        *,
        version: str = ...,
    ) -> Awaitable[JsonDict]:
        """``version``: the OCPP version the call is written in (default 1.6); a charger that
        speaks another gets nothing (``CallFailed``)."""


class ChargerDirectory(Protocol):
    """The chargers the site has: configured (the configuration in force) and connected."""

    def configured(self, charger_id: str) -> ChargerConfig | None: ...

    def configured_ids(self) -> list[str]: ...

    def is_connected(self, charger_id: str) -> bool: ...

    def connected_ids(self) -> list[str]: ...

    def version_of(self, charger_id: str) -> str:
        """The OCPP version the connected charger speaks (``ocpp1.6`` when not known)."""


class _Link(Protocol):
    @property
    def version(self) -> str: ...


class Connection(Protocol):
    """A connected charger as the daemon keeps it (a charger session): its relay link says
    the OCPP version it negotiated."""

    @property
    def link(self) -> _Link: ...


class Chargers:
    """A :class:`ChargerDirectory` over the daemon's configuration (read at each use: a reload
    replaces it) and its map of connected chargers (kept up to date by the daemon)."""

    def __init__(self, config: Callable[[], Config], connected: Mapping[str, Connection]) -> None:
        self._config = config
        self._connected = connected

    def configured(self, charger_id: str) -> ChargerConfig | None:
        return self._config().charger(charger_id)

    def configured_ids(self) -> list[str]:
        return [c.id for c in self._config().chargers]

    def is_connected(self, charger_id: str) -> bool:
        return charger_id in self._connected

    def connected_ids(self) -> list[str]:
        return list(self._connected)

    def version_of(self, charger_id: str) -> str:
        connection = self._connected.get(charger_id)
        return OCPP16 if connection is None else connection.link.version


def require_configured(chargers: ChargerDirectory, charger_id: str) -> ChargerConfig:
    """The configuration of ``charger_id``; :class:`NotFound` naming the configured ones."""
    configured = chargers.configured(charger_id)
    if configured is None:
        raise NotFound(_not_configured(chargers, charger_id))
    return configured


def require_connected(chargers: ChargerDirectory, charger_id: str) -> str:
    """``charger_id`` if it is connected; :class:`NotFound` if it is not even configured,
    :class:`NotConnected` if it is configured but away."""
    if chargers.is_connected(charger_id):
        return charger_id
    if chargers.configured(charger_id) is None:
        raise NotFound(_not_configured(chargers, charger_id))
    raise NotConnected(charger_id)


def _not_configured(chargers: ChargerDirectory, charger_id: str) -> str:
    known = ", ".join(chargers.configured_ids()) or "none"
    return f"no charger {charger_id!r} is configured (configured: {known})"


async def record_event(
    record: EventRecorder | None,
    kind: str,
    message: str,
    *,
    charger_id: str | None,
    data: JsonDict,
) -> None:
    """Record a change someone asked for; a failure is logged (the change is made: a full disk
    must not hide its answer)."""
    if record is None:
        return
    try:
        await record(kind, message, charger_id=charger_id, data=data)
    except Exception:
        log.exception("%s: could not record %s", charger_id or "site", kind)
