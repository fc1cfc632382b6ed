"""What the live state tells its listeners: which part changed, and the one-off events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JsonDict = dict[str, Any]


class EventKind(StrEnum):
    SESSION_STARTED = "session_started"
    SESSION_STOPPED = "session_stopped"
    CARD_REFUSED = "card_refused"
    """Authorize or StartTransaction answered with a status other than Accepted."""
    METER_LOST = "meter_lost"
    METER_RESTORED = "meter_restored"
    LIMIT_CHANGED = "limit_changed"
    CHARGER_CONNECTED = "charger_connected"
    CHARGER_DISCONNECTED = "charger_disconnected"
    CHARGER_FAULT = "charger_fault"
    """A connector reported an error code or the Faulted status."""


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """Something that happened once (not a state): sent as a message, kept in a short list."""

    kind: EventKind
    at: float
    charger_id: str | None = None
    connector: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> JsonDict:
        return {
            "event": self.kind.value,
            "at": self.at,
            "charger": self.charger_id,
            "connector": self.connector,
            **self.data,
        }


class Scope(StrEnum):
    SITE = "site"
    CHARGER = "charger"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class LiveChange:
    """What a listener is told: the site or one charger changed, or an event happened."""

    scope: Scope
    charger_id: str | None = None
    event: LiveEvent | None = None


ChangeListener = Callable[[LiveChange], None]
