"""Control-socket operations on sessions (filled in by the session work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgegw.control.server import ControlServer

if TYPE_CHECKING:
    from edgegw.daemon import Gateway


class SessionOps:
    """Registers the session operations on a :class:`ControlServer`."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    def register(self, server: ControlServer) -> None:
        """No operations yet."""
