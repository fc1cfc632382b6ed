"""Why a use case was not carried out, in words for the person who asked.

The control socket answers each kind with its error code (:mod:`edgegw.control.server`), MQTT
with a refused command's reason (:mod:`edgegw.telemetry.commands`).
"""

from __future__ import annotations


class ServiceError(Exception):
    """A use case refused; the message says why."""


class BadRequest(ServiceError):
    """The request itself is wrong (a value out of range)."""


class NotFound(ServiceError):
    """What the request names (a charger, a session) does not exist."""


class Conflict(ServiceError):
    """Not possible in the current state or configuration."""


class Unavailable(ServiceError):
    """Not possible right now (a charger offline, no answer); worth a retry."""


class NotConnected(Unavailable):
    """A configured charger is not connected to the gateway."""

    def __init__(self, charger_id: str) -> None:
        super().__init__(
            f"{charger_id} is not connected to the gateway; nothing can be sent to it until "
            "it is back online"
        )
        self.charger_id = charger_id


class Failed(ServiceError):
    """The gateway could not do its part (e.g. a write); its log says more."""


class ReloadError(Conflict):
    """The configuration file could not be reloaded (the message says why)."""
