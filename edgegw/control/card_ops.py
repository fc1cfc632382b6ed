"""Control-socket operations on the site's installer cards.

The card work itself is :class:`CardService`, over an :class:`~edgegw.auth.authorizer.Authorizer`.
The daemon answers the ``cards.*`` ops with it (:class:`CardOps`), and the CLI uses the very same
service on the store it opens itself when the daemon is not running, so a card an installer
prepares before the first start is stored and shown exactly as the daemon would.

Through the daemon a change takes effect at once: the authorizer decides with it from the next
tap (a card the site refuses is refused even when the cloud accepts it, unless
``auth.site_overrides_cloud`` is false), and the list pusher sends it to every charger that holds
a local list. A mutating op may
``wait`` a few seconds for those pushes and reports, per charger, whether its list is in step.

Card ids are read with :mod:`edgegw.auth.idtags`, so an installer can type the UID as any
reader printed it (``04:a1:b2:c3``, reversed hex with ``format``, the decimal number printed on
the card). Results are plain JSON; times are Unix seconds or ISO 8601 (expiry).
"""

from __future__ import annotations

from collections.abc import Callable

from edgegw.auth.authorizer import Authorizer
from edgegw.auth.listpush import ListPusher
from edgegw.config import Config
from edgegw.control.card_service import CARD_OPS, CardService
from edgegw.control.card_text import MAX_PAGE, PAGE_BYTES, card_json, parse_text, read_csv
from edgegw.control.optable import register_ops
from edgegw.control.server import ControlServer

__all__ = [
    "CARD_OPS",
    "MAX_PAGE",
    "PAGE_BYTES",
    "CardOps",
    "CardService",
    "card_json",
    "parse_text",
    "read_csv",
]


class CardOps:
    """Registers the ``cards.*`` operations on a :class:`ControlServer`, over the daemon's
    ``authorizer``, configuration in force (``config``), list ``pusher`` and ``connected``
    chargers."""

    def __init__(
        self,
        authorizer: Authorizer,
        config: Callable[[], Config],
        *,
        pusher: ListPusher | None = None,
        connected: Callable[[], list[str]] = list,
    ) -> None:
        self._authorizer = authorizer
        self._config = config
        self._pusher = pusher
        self._connected = connected

    def register(self, server: ControlServer) -> None:
        register_ops(server, CARD_OPS, self.service)

    def service(self) -> CardService:
        return CardService(
            self._authorizer, self._config(), pusher=self._pusher, connected=self._connected
        )
