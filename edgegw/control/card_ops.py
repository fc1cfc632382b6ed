"""Control-socket operations on cards (filled in by the card work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgegw.control.server import ControlServer

if TYPE_CHECKING:
    from edgegw.daemon import Gateway


class CardOps:
    """Registers the card operations on a :class:`ControlServer`."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    def register(self, server: ControlServer) -> None:
        """No operations yet."""
