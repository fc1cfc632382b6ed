"""The local OCPP-J server the site's chargers connect to.

Everything that can be refused is refused before a WebSocket exists. At TCP accept
(:mod:`edgegw.security.guarded`): sources outside ``allowed_networks``, an address over its
connection limit, too many pending handshakes. At the TLS handshake: a client certificate that
does not verify, plain ``ws://`` sent to a TLS port. At the HTTP upgrade (here): a path that is
not ``<path>/<identity>`` or an unknown identity gets HTTP 404 (OCPP-J 1.6 §3.1); a connection
below the charger's Security Profile, or with a client certificate for another identity, 403;
a missing or wrong password 401; a source or identity in failed-login back-off 429, and so is an
identity reconnecting faster than ``max_connects_per_minute`` (so a charger in a reconnect loop
cannot make the gateway open a cloud connection per attempt). Subprotocols: ``ocpp1.6``,
``ocpp2.0.1`` and ``ocpp2.1`` (:mod:`edgegw.ocpp.versions`); the first the charger offers wins
(its order of preference). A client that offers none of them gets the handshake completed
without a subprotocol and is closed at once (1002), as OCPP-J requires.

The right password always gets in: a guesser can put an identity in back-off, but the back-off
does not apply to the addresses that charger logged in from before (remembered across restarts
through the chargers table's last address, which refusals of a known charger therefore do not
overwrite), nor to a password verified before. Password checks are counted before they run, so
concurrent guesses cannot all be checked before the first refusal.

Unknown identities are recorded for the installer (``edgegw chargers pending``) at a bounded
rate and up to a bounded number, and logged at most once a minute with a count. A handshake
whose path holds no identity (a charger set to ``/ocpp``, ``/CP-1`` or ``/ocpp/CP-1/CP-1``,
the most common set-up mistake) is remembered in memory, per source address and path, with
the identity the path most likely meant and the URL the charger should use
(:class:`WrongUrls`; bounded, shown by ``edgegw chargers pending`` and ``edgegw doctor``), and
recorded in the event journal when first seen (at a bounded rate).

Listeners: with ``security_profile`` 2 or 3 the one port speaks TLS only, so there is no
plain-text path to downgrade to. A profile-1 site may add ``tls_port`` for chargers raised to
profile 2 or 3. Which listener a charger came through proves nothing by itself: its required
profile is checked on every connection, and both listeners share the same limits.

The upgrade checks are in :mod:`~edgegw.proxy.handshake`, unknown identities in
:mod:`~edgegw.proxy.unknownids`, wrong URLs in :mod:`~edgegw.proxy.wrongurls`; every name is
importable from here.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from ssl import SSLContext
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from edgegw.config import Config
from edgegw.ocpp.versions import SUPPORTED, choose, required, site_versions
from edgegw.proxy.handshake import (
    CONCURRENT_PASSWORD_CHECKS,
    CONNECT_BURST,
    WWW_AUTHENTICATE,
    SessionHandler,
    _HandshakeChecks,
    _plain,
    _where,
    parse_basic_auth,
)
from edgegw.proxy.keepalive import Keepalive
from edgegw.proxy.unknownids import (
    MAX_PENDING_IDENTITIES,
    UNKNOWN_BURST,
    UNKNOWN_PER_MINUTE,
    UnknownRecorder,
)
from edgegw.proxy.wrongurls import (
    MAX_WRONG_URLS,
    WRONG_URL_EVENTS_BURST,
    WRONG_URL_EVENTS_PER_MINUTE,
    WrongUrl,
    WrongUrls,
    guess_identity,
)
from edgegw.security.admission import ConnectionGuard
from edgegw.security.guarded import GuardedConnection, ListenerPolicy, connection_class
from edgegw.security.loggable import loggable
from edgegw.security.tls import server_context

log = logging.getLogger(__name__)


OCPP16 = Subprotocol("ocpp1.6")
SUBPROTOCOLS = [Subprotocol(name) for name in SUPPORTED]


class OcppServer(_HandshakeChecks):
    """Accepts chargers and hands each accepted connection to ``on_session``.

    With a ``keepalive`` the charger connections are pinged by it (the site's one keepalive
    task) while their session runs, not by a websockets task each."""

    def __init__(self, *args: Any, keepalive: Keepalive | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keepalive = keepalive

    @property
    def port(self) -> int:
        """The main port (``server.port``): TLS with profile 2/3, else plain ws://."""
        main = self._plain_server or self._tls_server
        assert main is not None, "server not started"
        return _port_of(main)

    @property
    def tls_port(self) -> int | None:
        """The port that speaks TLS (the main one with profile 2/3), or None."""
        return None if self._tls_server is None else _port_of(self._tls_server)

    @property
    def guard(self) -> ConnectionGuard:
        return self._guard

    def use_config(self, config: Config) -> None:
        """Take a reloaded configuration: the charger list and passwords of new connections.

        Listeners, TLS material and limits stay as they were started. A charger taken out of
        the list loses the handshake reserve of the addresses it logged in from; one taken out
        or given another password hash loses its verified password (the next login runs scrypt).
        """
        self._config = config

        def password_hash(identity: str) -> str | None:
            charger = config.charger(identity)
            return None if charger is None else charger.password_hash

        self._verified.keep_only(password_hash)
        for identity in self._trusted.identities():
            if config.charger(identity) is None:
                self._trusted.forget(identity)

    async def start(self) -> None:
        server = self._config.server
        await self._remember_logins()
        context = None
        if server.tls_cert_file is not None and server.tls_key_file is not None:
            context = server_context(
                server.tls_cert_file, server.tls_key_file, server.tls_client_ca_file
            )
        if server.security_profile >= 2:
            assert context is not None  # the config requires the files
            self._tls_server = await self._listen(server.port, context)
        else:
            self._plain_server = await self._listen(server.port, None)
            if server.tls_port is not None and context is not None:
                self._tls_server = await self._listen(server.tls_port, context)
        if self._plain_server is not None:
            log.info(
                "OCPP server listening on ws://%s:%d%s/<charger id> (security profile 1)",
                server.host,
                _port_of(self._plain_server),
                server.path,
            )
        if self._tls_server is not None:
            log.info(
                "OCPP server listening on wss://%s:%d%s/<charger id> (TLS >= 1.2, security "
                "profile %s)",
                server.host,
                _port_of(self._tls_server),
                server.path,
                "2 or 3" if server.tls_client_ca_file is not None else "2",
            )
        if server.allowed_networks:
            log.info(
                "chargers may connect only from %s",
                ", ".join(str(n) for n in server.allowed_networks),
            )

    async def _remember_logins(self) -> None:
        """Read back where each configured charger last logged in from, and how many unknown
        identities are pending (the start of a run forgets nothing an attacker could use)."""
        rows = await self._store.chargers()
        for row in rows:
            configured = self._config.charger(row.id) is not None
            if configured and row.state == "known" and row.last_address:
                self._trusted.add(row.id, row.last_address)
        self._unknown.count(rows)

    async def _listen(self, port: int, context: SSLContext | None) -> Server:
        server = self._config.server
        policy = ListenerPolicy(
            guard=self._guard,
            tasks=self._tasks,
            quiet=self._quiet,
            tls=context,
            handshake_timeout=server.handshake_timeout,
            message_rate=server.max_messages_per_second,
            message_burst=server.message_burst,
            flood_close_after=server.flood_close_after,
            max_message_size=server.max_message_size,
            buckets=self._messages,
            clock=self._clock,
        )
        return await serve(
            self._handle,
            server.host,
            port,
            subprotocols=SUBPROTOCOLS,
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            compression=None,
            max_size=server.max_message_size,
            open_timeout=server.handshake_timeout,
            ping_interval=None if self._keepalive is not None else server.ping_interval or None,
            ping_timeout=server.ping_timeout,
            create_connection=connection_class(policy),
            logger=logging.getLogger("edgegw.websockets.server"),
        )

    async def stop(self) -> None:
        """Stop accepting and close every charger connection (code 1001, going away)."""
        servers = [s for s in (self._plain_server, self._tls_server) if s is not None]
        for server in servers:
            server.close(close_connections=True)
        self._guard.abort_pending()
        await self._tasks.close("server stopping")
        for server in servers:
            await server.wait_closed()

    # ------------------------------------------------------------ handshake

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        assert isinstance(connection, GuardedConnection)
        try:
            return await self._admit(connection, request)
        except Exception as exc:
            self._quiet.log(
                logging.ERROR,
                "crash:" + _where(exc),
                "handshake of %s from %s failed; answered HTTP 500",
                connection.identity or loggable(request.path),
                connection.host,
                exc_info=True,
            )
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _select_subprotocol(
        self, connection: ServerConnection, offered: object
    ) -> Subprotocol | None:
        # 1.6 when offered, else the charger's first 2.x choice (edgegw.ocpp.versions); none:
        # complete the handshake without a subprotocol, and _handle closes.
        if not isinstance(offered, (list, tuple)):
            return None
        allowed, _why = self._site_versions()
        chosen = choose(offered, allowed)
        return None if chosen is None else Subprotocol(chosen)

    def _site_versions(self) -> tuple[tuple[str, ...], str | None]:
        """The versions this site takes, and why it takes no others (edgegw.ocpp.versions)."""
        return site_versions(
            cloud=self._config.cloud is not None, capped=self._config.site is not None
        )

    async def _handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, GuardedConnection)
        connection.opened()
        identity = connection.identity
        if identity is None:  # cannot happen: process_request accepted it
            await connection.close(1011, "internal error")
            return
        if connection.subprotocol not in SUPPORTED:
            allowed, why = self._site_versions()
            wanted, reason = ", ".join(allowed), required(allowed, why)
            log.warning(
                "refused %s from %s: it offered none of the subprotocols %s%s",
                identity,
                connection.host,
                wanted,
                "" if why is None else f" ({why})",
            )
            await connection.close(1002, reason)
            return
        keepalive = self._keepalive
        if keepalive is not None:
            server = self._config.server
            keepalive.register(connection, server.ping_interval, server.ping_timeout)
        try:
            await self._on_session(identity, connection)
        except ConnectionClosed:
            pass  # the charger went away while its session was busy: nothing failed
        except Exception as exc:
            # websockets would log this at ERROR on its own (quietened) logger: say it here,
            # once a minute for the same failure, naming the charger.
            self._quiet.log(
                logging.ERROR,
                "crash:" + _where(exc),
                "the connection of %s from %s failed: %s; closing it (1011)",
                identity,
                connection.host,
                loggable(exc, 300),
                exc_info=True,
            )
            await connection.close(1011, "internal error")
        finally:
            if keepalive is not None:
                keepalive.unregister(connection)


def _port_of(server: Server) -> int:
    return int(server.sockets[0].getsockname()[1])


__all__ = [
    "CONCURRENT_PASSWORD_CHECKS",
    "CONNECT_BURST",
    "MAX_PENDING_IDENTITIES",
    "MAX_WRONG_URLS",
    "OCPP16",
    "UNKNOWN_BURST",
    "UNKNOWN_PER_MINUTE",
    "WRONG_URL_EVENTS_BURST",
    "WRONG_URL_EVENTS_PER_MINUTE",
    "WWW_AUTHENTICATE",
    "OcppServer",
    "SessionHandler",
    "UnknownRecorder",
    "WrongUrl",
    "WrongUrls",
    "guess_identity",
    "parse_basic_auth",
]
