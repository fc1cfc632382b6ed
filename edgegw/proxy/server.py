"""The local OCPP-J server the site's chargers connect to.

Everything that can be refused is refused at the handshake, before a WebSocket exists:
a path that is not ``<path>/<identity>`` or an unknown identity gets HTTP 404 (OCPP-J 1.6 §3.1),
a missing or wrong password HTTP 401. A client that offers no ``ocpp1.6`` subprotocol gets the
handshake completed without one and is closed at once, as OCPP-J requires.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from edgegw.auth.passwords import verify_password
from edgegw.config import CHARGER_ID_PATTERN, Config
from edgegw.store.store import Store

log = logging.getLogger(__name__)

OCPP16 = Subprotocol("ocpp1.6")

SessionHandler = Callable[[str, ServerConnection], Awaitable[None]]


def _plain(status: HTTPStatus, text: str, extra: dict[str, str] | None = None) -> Response:
    body = (text + "\n").encode()
    headers = Headers(
        {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))}
    )
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status.value, status.phrase, headers, body)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class OcppServer:
    """Accepts chargers and hands each accepted connection to ``on_session``."""

    def __init__(self, config: Config, store: Store, on_session: SessionHandler) -> None:
        self._config = config
        self._store = store
        self._on_session = on_session
        self._server: Server | None = None
        self._prefix = config.server.path + "/"
        self._identities: weakref.WeakKeyDictionary[ServerConnection, str] = (
            weakref.WeakKeyDictionary()
        )
        # Digests of verified passwords: scrypt is deliberately slow, reconnects are not.
        self._verified: dict[str, tuple[str, bytes]] = {}

    @property
    def port(self) -> int:
        assert self._server is not None
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    async def start(self) -> None:
        server = self._config.server
        self._server = await serve(
            self._handle,
            server.host,
            server.port,
            subprotocols=[OCPP16],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            compression=None,
            max_size=server.max_message_size,
            ping_interval=server.ping_interval or None,
            ping_timeout=server.ping_timeout,
            logger=logging.getLogger("edgegw.websockets.server"),
        )
        log.info(
            "OCPP server listening on ws://%s:%d%s/<charger id>",
            server.host,
            self.port,
            server.path,
        )

    async def stop(self) -> None:
        """Stop accepting and close every charger connection (code 1001, going away)."""
        if self._server is None:
            return
        self._server.close(close_connections=True)
        await self._server.wait_closed()

    # ------------------------------------------------------------ handshake

    def _identity(self, path: str) -> str | None:
        path = path.split("?", 1)[0]
        if not path.startswith(self._prefix):
            return None
        identity = unquote(path[len(self._prefix) :])
        return identity if CHARGER_ID_PATTERN.match(identity) else None

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        address = _address(connection)
        identity = self._identity(request.path)
        if identity is None:
            log.warning("refused %s: no charger identity in path %r", address, request.path)
            return _plain(HTTPStatus.NOT_FOUND, f"connect to {self._prefix}<charger id>")
        charger = self._config.charger(identity)
        if charger is None and not self._config.server.allow_unknown_chargers:
            log.warning("refused unknown charger %s from %s (HTTP 404)", identity, address)
            await self._store.charger_refused(identity, address, "unknown identity")
            return _plain(HTTPStatus.NOT_FOUND, "unknown charge point")
        if charger is not None and charger.password_hash is not None:
            credentials = parse_basic_auth(request.headers.get("Authorization"))
            if credentials is None or credentials[0] != identity:
                log.warning("refused %s from %s: no or wrong Basic auth user", identity, address)
                return _plain(
                    HTTPStatus.UNAUTHORIZED,
                    "Basic authentication with the charge point identity required",
                    {"WWW-Authenticate": 'Basic realm="edgegw", charset="UTF-8"'},
                )
            if not await self._check_password(identity, charger.password_hash, credentials[1]):
                log.warning("refused %s from %s: wrong password (HTTP 401)", identity, address)
                await self._store.charger_refused(identity, address, "wrong password")
                return _plain(
                    HTTPStatus.UNAUTHORIZED,
                    "wrong password",
                    {"WWW-Authenticate": 'Basic realm="edgegw", charset="UTF-8"'},
                )
        self._identities[connection] = identity
        return None

    async def _check_password(self, identity: str, stored: str, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        if self._verified.get(identity) == (stored, digest):
            return True
        ok = await asyncio.to_thread(verify_password, stored, presented)
        if ok:
            self._verified[identity] = (stored, digest)
        return ok

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, offered: object) -> Subprotocol | None:
        # No match: complete the handshake without a subprotocol; _handle then closes.
        return OCPP16 if isinstance(offered, (list, tuple)) and OCPP16 in offered else None

    async def _handle(self, connection: ServerConnection) -> None:
        identity = self._identities.pop(connection, None)
        if identity is None:  # cannot happen: process_request accepted it
            await connection.close(1011, "internal error")
            return
        if connection.subprotocol != OCPP16:
            log.warning(
                "refused %s from %s: it did not offer subprotocol ocpp1.6",
                identity,
                _address(connection),
            )
            await connection.close(1002, "subprotocol ocpp1.6 required")
            return
        await self._on_session(identity, connection)


def _address(connection: ServerConnection) -> str:
    remote = connection.remote_address
    if isinstance(remote, tuple) and len(remote) >= 2:
        return f"{remote[0]}:{remote[1]}"
    return str(remote)
