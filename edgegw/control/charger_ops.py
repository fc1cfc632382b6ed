"""Control-socket operations on chargers (filled in by the charger work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgegw.control.server import ControlServer

if TYPE_CHECKING:
    from edgegw.daemon import Gateway


class ChargerOps:
    """Registers the charger operations on a :class:`ControlServer`."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    def register(self, server: ControlServer) -> None:
        """No operations yet."""
