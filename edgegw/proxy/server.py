"""The local OCPP-J server the site's chargers connect to.

Everything that can be refused is refused before a WebSocket exists. At TCP accept
(:mod:`edgegw.security.guarded`): sources outside ``allowed_networks``, an address over its
connection limit, too many pending handshakes. At the TLS handshake: a client certificate that
does not verify, plain ``ws://`` sent to a TLS port. At the HTTP upgrade (here): a path that is
not ``<path>/<identity>`` or an unknown identity gets HTTP 404 (OCPP-J 1.6 §3.1); a connection
below the charger's Security Profile, or with a client certificate for another identity, 403;
a missing or wrong password 401; a source or identity in failed-login back-off 429, and so is an
identity reconnecting faster than ``max_connects_per_minute`` (so a charger in a reconnect loop
cannot make the gateway open a cloud connection per attempt). A client that offers no
``ocpp1.6`` subprotocol gets the handshake completed without one and is closed at once, as
OCPP-J requires.

The right password always gets in: a guesser can put an identity in back-off, but the back-off
does not apply to the addresses that charger logged in from before (remembered across restarts
through the chargers table's last address, which refusals of a known charger therefore do not
overwrite), nor to a password verified before. Password checks are counted before they run, so
concurrent guesses cannot all be checked before the first refusal.

Unknown identities are recorded for the installer (``edgegw chargers pending``) at a bounded
rate and up to a bounded number, and logged at most once a minute with a count.

Listeners: with ``security_profile`` 2 or 3 the one port speaks TLS only, so there is no
plain-text path to downgrade to. A profile-1 site may add ``tls_port`` for chargers raised to
profile 2 or 3. Which listener a charger came through proves nothing by itself: its required
profile is checked on every connection, and both listeners share the same limits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from ssl import SSLContext
from typing import Final
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from edgegw.auth.passwords import verify_password
from edgegw.config import CHARGER_ID_PATTERN, ChargerConfig, Config
from edgegw.security.admission import ConnectionGuard, TrustedSources, address_key
from edgegw.security.guarded import GuardedConnection, ListenerPolicy, connection_class
from edgegw.security.loggable import loggable
from edgegw.security.quiet_log import QuietLog
from edgegw.security.throttle import Buckets, LoginThrottle, TokenBucket
from edgegw.security.tls import common_name, peer_certificate, server_context
from edgegw.store.store import ChargerRow, Store
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

OCPP16 = Subprotocol("ocpp1.6")
# scrypt needs ~16 MiB per check; a burst of guesses must not exhaust a small box's memory.
CONCURRENT_PASSWORD_CHECKS = 2
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Basic realm="edgegw", charset="UTF-8"'}
# Accepted connections one identity may make at once before max_connects_per_minute paces it.
CONNECT_BURST: Final = 20
# Unknown identities recorded for the installer: a burst, then so many a minute, at most so many.
UNKNOWN_BURST: Final = 10
UNKNOWN_PER_MINUTE: Final = 10
MAX_PENDING_IDENTITIES: Final = 100

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

    def __init__(
        self,
        config: Config,
        store: Store,
        on_session: SessionHandler,
        *,
        clock: Callable[[], float] = time.monotonic,
        login_keys: int = 10_000,
    ) -> None:
        self._config = config
        self._store = store
        self._on_session = on_session
        self._clock = clock
        server = config.server
        self._prefix = server.path + "/"
        self._trusted = TrustedSources()
        self._guard = ConnectionGuard(
            allowed_networks=server.allowed_networks,
            max_per_address=server.max_connections_per_address,
            max_pending=server.max_pending_handshakes,
            max_pending_per_address=server.max_pending_per_address
            or max(1, server.max_pending_handshakes // 4),
            trusted=self._trusted,
            clock=clock,
        )
        # Failed logins per source address (bounded, LRU) and per configured identity: apart,
        # so that a flood of junk from many addresses cannot push an identity's back-off out.
        self._logins = LoginThrottle(
            free_failures=server.failed_logins_before_backoff,
            max_delay=server.login_backoff_max,
            max_keys=login_keys,
            clock=clock,
        )
        self._accounts = LoginThrottle(
            free_failures=server.failed_logins_before_backoff,
            max_delay=server.login_backoff_max,
            max_keys=1_000_000,  # only configured identities get here
            clock=clock,
        )
        self._connects = Buckets(server.max_connects_per_minute / 60, CONNECT_BURST, clock=clock)
        # Identities that are not configured (allow_unknown_chargers) cost nothing to invent:
        # theirs are counted per address, as if the address held max_connections_per_address
        # chargers, so cycling through made-up names does not open a cloud connection each.
        per_address = server.max_connections_per_address
        self._unknown_connects = Buckets(
            server.max_connects_per_minute / 60 * per_address,
            max(CONNECT_BURST, per_address),
            clock=clock,
        )
        self._messages = (
            Buckets(server.max_messages_per_second, server.message_burst, clock=clock)
            if server.max_messages_per_second > 0
            else None
        )
        self._quiet = QuietLog(log, clock=clock)
        self._unknown = UnknownRecorder(store, clock=clock)
        self._tasks = TaskOwner("ocpp-server")
        self._password_checks = asyncio.Semaphore(CONCURRENT_PASSWORD_CHECKS)
        # Digests of verified passwords: scrypt is deliberately slow, reconnects are not.
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._plain_server: Server | None = None
        self._tls_server: Server | None = None

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
        the list loses the handshake reserve of the addresses it logged in from.
        """
        self._config = config
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
            subprotocols=[OCPP16],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            compression=None,
            max_size=server.max_message_size,
            open_timeout=server.handshake_timeout,
            ping_interval=server.ping_interval or None,
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

    def _identity(self, path: str) -> str | None:
        path = path.split("?", 1)[0]
        if not path.startswith(self._prefix):
            return None
        identity = unquote(path[len(self._prefix) :])
        return identity if CHARGER_ID_PATTERN.match(identity) else None

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

    async def _admit(self, connection: GuardedConnection, request: Request) -> Response | None:
        host = connection.host
        source = "addr:" + address_key(host)
        wait = self._logins.retry_after(source)
        if wait > 0:
            return self._throttled(source, f"source {host}", wait)
        identity = self._identity(request.path)
        if identity is None:
            self._logins.failed(source)
            self._quiet.warning(
                "no-identity",
                "refused %s: no charger identity in path %s",
                host,
                loggable(request.path),
            )
            return _plain(HTTPStatus.NOT_FOUND, f"connect to {self._prefix}<charger id>")
        charger = self._config.charger(identity)
        if charger is None and not self._config.server.allow_unknown_chargers:
            self._logins.failed(source)
            self._quiet.warning(
                "unknown", "refused unknown charger %s from %s (HTTP 404)", identity, host
            )
            await self._unknown.refused(identity, host, self._quiet)
            return _plain(HTTPStatus.NOT_FOUND, "unknown charge point")
        connection.identify(identity)

        refusal = self._check_transport(connection, identity, charger)
        if refusal is not None:
            self._logins.failed(source)
            return refusal
        has_certificate = peer_certificate(connection.tls_object) is not None
        header = request.headers.get("Authorization")
        # With profile 3 and no Authorization header, the certificate is the credential.
        if (
            charger is not None
            and charger.password_hash is not None
            and not (has_certificate and header is None)
        ):
            refusal = await self._check_password(
                connection, identity, charger.password_hash, header
            )
            if refusal is not None:
                return refusal
        self._logins.succeeded(source)
        if charger is not None:
            wait = self._connects.get(identity).try_take()
            if wait > 0:
                return self._too_often(identity, host, wait)
            self._trusted.add(identity, host)
        else:
            wait = self._unknown_connects.get(source).try_take()
            if wait > 0:
                return self._too_often(identity, host, wait, f"unconfigured identities from {host}")
        return None

    def _check_transport(
        self, connection: GuardedConnection, identity: str, charger: ChargerConfig | None
    ) -> Response | None:
        """The connection meets the charger's Security Profile, and its certificate is its own."""
        host = connection.host
        tls = connection.tls_object
        cert = peer_certificate(tls)
        required = self._config.security_profile(identity)
        if cert is not None:
            expected = (charger.certificate_cn if charger else None) or identity
            presented = common_name(cert)
            if presented != expected:
                self._quiet.warning(
                    f"cn:{identity}",
                    "refused %s from %s: its client certificate is for CN %s, expected %r "
                    "(HTTP 403)",
                    identity,
                    host,
                    loggable(presented),
                    expected,
                )
                return _plain(HTTPStatus.FORBIDDEN, "client certificate is not for this identity")
        if required >= 2 and tls is None:
            self._quiet.warning(
                f"plain:{identity}",
                "refused %s from %s: security profile %d requires TLS (wss://) but it "
                "connected over plain ws:// (HTTP 403)",
                identity,
                host,
                required,
            )
            return _plain(HTTPStatus.FORBIDDEN, f"security profile {required}: connect with wss://")
        if required == 3 and cert is None:
            self._quiet.warning(
                f"nocert:{identity}",
                "refused %s from %s: security profile 3 requires a client certificate and it "
                "presented none (HTTP 403)",
                identity,
                host,
            )
            return _plain(
                HTTPStatus.FORBIDDEN, "security profile 3: a client certificate is required"
            )
        return None

    async def _check_password(
        self, connection: GuardedConnection, identity: str, stored: str, header: str | None
    ) -> Response | None:
        host = connection.host
        source = "addr:" + address_key(host)
        account = "id:" + identity
        credentials = parse_basic_auth(header)
        if credentials is not None and credentials[0] == identity:
            if self._cached(identity, stored, credentials[1]):
                # A password verified before is accepted even while the identity is in
                # back-off: someone guessing a charger's password cannot lock the charger out.
                self._accounts.succeeded(account)
                return None
            # The identity's back-off stops guessers, not the charger at an address it logged
            # in from before. Each check is counted before it runs (as a failure until it
            # succeeds), so concurrent guesses cannot all be checked.
            wait = self._logins.attempt(source)
            if wait > 0:
                return self._throttled(source, f"source {host}", wait)
            if self._trusted.trusted_for(identity, host):
                self._accounts.failed(account)
            else:
                wait = self._accounts.attempt(account)
                if wait > 0:
                    return self._throttled(account, f"charger {identity}", wait)
            async with self._password_checks:
                ok = await asyncio.to_thread(verify_password, stored, credentials[1])
            if ok:
                self._verified[identity] = (stored, _digest(credentials[1]))
                self._accounts.succeeded(account)
                return None
            reason = "wrong password"
        else:
            reason = "no or wrong Basic auth user"
            self._logins.failed(source)
            self._accounts.failed(account)
        delay = self._accounts.retry_after(account)
        backoff = f"; back-off {delay:.0f} s" if delay else ""
        if self._quiet.warning(
            f"password:{identity}",
            "refused %s from %s: %s (HTTP 401; %d failure(s)%s)",
            identity,
            host,
            reason,
            self._accounts.failures(account),
            backoff,
        ) and not self._trusted.known(identity):
            # A charger that logged in before is not recorded as refused: that would overwrite
            # the address it logs in from, which its back-off exemption is read back from.
            await self._store.charger_refused(identity, host, reason)
        text = (
            "wrong password"
            if reason == "wrong password"
            else "Basic authentication with the charge point identity required"
        )
        return _plain(HTTPStatus.UNAUTHORIZED, text, WWW_AUTHENTICATE)

    def _cached(self, identity: str, stored: str, presented: str) -> bool:
        cached = self._verified.get(identity)
        return (
            cached is not None
            and cached[0] == stored
            and hmac.compare_digest(cached[1], _digest(presented))
        )

    def _throttled(self, key: str, who: str, wait: float) -> Response:
        seconds = max(1, math.ceil(wait))
        self._quiet.warning(
            f"throttled:{key}",
            "refused %s: too many failed logins, in back-off for %d s more (HTTP 429; "
            "server.failed_logins_before_backoff)",
            who,
            seconds,
        )
        return _plain(
            HTTPStatus.TOO_MANY_REQUESTS,
            "too many failed attempts; try again later",
            {"Retry-After": str(seconds)},
        )

    def _too_often(self, identity: str, host: str, wait: float, who: str | None = None) -> Response:
        seconds = max(1, math.ceil(wait))
        server = self._config.server
        if who is None:
            self._quiet.warning(
                f"reconnects:{identity}",
                "refused %s from %s: it reconnects more often than %g times a minute "
                "(server.max_connects_per_minute; HTTP 429, retry in %d s)",
                identity,
                host,
                server.max_connects_per_minute,
                seconds,
            )
        else:
            self._quiet.warning(
                f"reconnects:{who}",
                "refused %s: %s connect more often than %g times a minute "
                "(server.max_connects_per_minute x max_connections_per_address; HTTP 429, "
                "retry in %d s)",
                identity,
                who,
                server.max_connects_per_minute * server.max_connections_per_address,
                seconds,
            )
        return _plain(
            HTTPStatus.TOO_MANY_REQUESTS,
            "reconnecting too often; try again later",
            {"Retry-After": str(seconds)},
        )

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, offered: object) -> Subprotocol | None:
        # No match: complete the handshake without a subprotocol; _handle then closes.
        return OCPP16 if isinstance(offered, (list, tuple)) and OCPP16 in offered else None

    async def _handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, GuardedConnection)
        connection.opened()
        identity = connection.identity
        if identity is None:  # cannot happen: process_request accepted it
            await connection.close(1011, "internal error")
            return
        if connection.subprotocol != OCPP16:
            log.warning(
                "refused %s from %s: it did not offer subprotocol ocpp1.6",
                identity,
                connection.host,
            )
            await connection.close(1002, "subprotocol ocpp1.6 required")
            return
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


class UnknownRecorder:
    """Records refused unknown identities for the installer, at a bounded rate and number.

    A flood of made-up identities from rotating addresses must not become thousands of pending
    rows: a burst of new identities is recorded, then ``UNKNOWN_PER_MINUTE``, and none once
    ``MAX_PENDING_IDENTITIES`` are pending (the count is read again from the database, at most
    once a minute, so that approving or removing some makes room). An identity already recorded
    is updated at most once a minute.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._new = TokenBucket(UNKNOWN_PER_MINUTE / 60, UNKNOWN_BURST, clock=clock)
        self._recorded: dict[str, float] = {}  # identity -> last written (bounded below)
        self.pending = 0
        self._counted_at = -math.inf

    async def refused(self, identity: str, host: str, quiet: QuietLog) -> None:
        now = self._clock()
        last = self._recorded.get(identity)
        if last is not None:
            if now - last >= 60:
                self._recorded[identity] = now
                await self._store.charger_refused(identity, host, "unknown identity")
            return
        if self.pending >= MAX_PENDING_IDENTITIES and now - self._counted_at >= 60:
            self._counted_at = now
            self.count(await self._store.chargers())
        if self.pending >= MAX_PENDING_IDENTITIES:
            quiet.warning(
                "unknown-full",
                "not recording unknown charger identities: %d are pending already "
                "(approve or remove them: edgegw chargers pending)",
                self.pending,
            )
            return
        if self._new.try_take() > 0:
            quiet.warning(
                "unknown-rate",
                "not recording all unknown charger identities: more than %d new ones a minute "
                "(a scan or a flood)",
                UNKNOWN_PER_MINUTE,
            )
            return
        if len(self._recorded) >= MAX_PENDING_IDENTITIES * 2:
            self._recorded.clear()
        self._recorded[identity] = now
        self.pending += 1
        await self._store.charger_refused(identity, host, "unknown identity")

    def count(self, rows: list[ChargerRow]) -> None:
        self.pending = sum(1 for r in rows if r.state == "pending")


def _where(exc: BaseException) -> str:
    """The failure's type and innermost line: the key that says "the same failure again"."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__qualname__}@{place}"


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode()).digest()


def _port_of(server: Server) -> int:
    return int(server.sockets[0].getsockname()[1])
