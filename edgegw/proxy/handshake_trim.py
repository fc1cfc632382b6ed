"""Drop the opening handshake's headers once the gateway has read what it needs from them.

websockets keeps a connection's handshake ``request`` and ``response`` (with all their headers)
for the connection's life: about 4 KiB per charger over its two connections (the charger's and
the cloud link). After the handshake websockets itself reads neither, except that a server
connection takes its first event as the request while ``request`` is None, and a client
connection its first as the response while ``response`` is None: those two stay set, with no
headers. The gateway reads the charger's request (Authorization, User-Agent) when its session
takes the connection (:meth:`ChargerSession.attach`, the daemon's new session before it) and
nothing of the cloud's response after :meth:`Upstream` checked the subprotocol (kept on the
connection's protocol, not in the headers).

The headers are emptied in place, not only unlinked from the connection: the protocol's parser
(a generator that parses frames for the connection's life) still holds the request or response
it parsed first in its locals, so replacing ``ws.request`` alone kept every header, the
charger's password among them, in memory until the connection closed.
"""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers


def trim_server_handshake(ws: ServerConnection) -> None:
    """Keep the charger's request path only; forget the headers and the 101 response."""
    request = ws.request
    if request is not None:
        request.headers = Headers()  # in place: the protocol's parser holds this object too
    if ws.response is not None:
        ws.response.headers = Headers()
    ws.response = None


def trim_client_handshake(ws: ClientConnection) -> None:
    """Keep the cloud's status line only; forget the headers sent and received."""
    response = ws.response
    if response is not None:
        response.headers = Headers()  # in place: the protocol's parser holds this object too
    if ws.request is not None:
        ws.request.headers = Headers()  # (the cloud credentials sent)
    ws.request = None
