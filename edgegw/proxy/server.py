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
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from ssl import SSLContext
from typing import Any, Final
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
from edgegw.store.events import EventRecorder
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
# Handshakes refused for their URL: so many (source, path) pairs are kept, the oldest go first;
# so many new ones a minute (after a burst) reach the event journal.
MAX_WRONG_URLS: Final = 50
WRONG_URL_EVENTS_BURST: Final = 5
WRONG_URL_EVENTS_PER_MINUTE: Final = 5
_HOST_HEADER = re.compile(
    r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?"
)

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
        record_event: EventRecorder | None = None,
        wall_clock: Callable[[], float] = time.time,
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
        self.wrong_urls = WrongUrls(
            clock=clock, wall_clock=wall_clock, record_event=record_event, tasks=self._tasks
        )
        """Handshakes refused because their path holds no charger identity."""
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
            self.wrong_urls.throttled(host, request.path)
            return self._throttled(source, f"source {host}", wait)
        identity = self._identity(request.path)
        if identity is None:
            self._logins.failed(source)
            refused = self.wrong_urls.refused(
                host,
                request.path,
                prefix=self._prefix,
                scheme="wss" if connection.tls_object is not None else "ws",
                reached=_own_address(connection),
                configured=lambda name: self._config.charger(name) is not None,
            )
            self._quiet.warning(
                "no-identity",
                "refused %s: no charger identity in path %s (%s); it should connect to %s",
                host,
                loggable(request.path),
                refused.reason,
                refused.url,
            )
            return _plain(HTTPStatus.NOT_FOUND, f"connect to {refused.url}")
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
            # in from before. Each check from elsewhere is counted before it runs (as a failure
            # until it succeeds), so concurrent guesses cannot all be checked. A charger at its
            # own address is counted only if it fails: after a restart the chargers behind one
            # NAT (or one IPv6 /64) reconnect together, every one with the right password.
            trusted = self._trusted.trusted_for(identity, host)
            wait = self._logins.retry_after(source) if trusted else self._logins.attempt(source)
            if wait > 0:
                return self._throttled(source, f"source {host}", wait)
            if not trusted:
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
            if trusted:  # counted now that it failed
                self._logins.failed(source)
                self._accounts.failed(account)
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


@dataclass(slots=True)
class WrongUrl:
    """Handshakes from one address to one path that holds no charger identity."""

    address: str
    path: str
    """As the charger sent it (printable, clipped)."""
    identity: str | None
    """The identity the path most likely meant (a configured one if any), or None."""
    configured: bool
    """Whether :attr:`identity` is a configured charger."""
    reason: str
    url: str
    """The URL the charger should use (the gateway's address it reached, the server's path)."""
    first_seen: float
    last_seen: float
    attempts: int = 1
    throttled: int = 0
    """Attempts answered HTTP 429 (the address was in failed-login back-off)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "path": self.path,
            "identity": self.identity,
            "configured": self.configured,
            "reason": self.reason,
            "url": self.url,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "attempts": self.attempts,
            "throttled": self.throttled,
        }


class WrongUrls:
    """Handshakes refused for their URL, per (source address, path), newest last.

    At most :data:`MAX_WRONG_URLS` are kept (the least recently seen go first), so a scan of
    made-up paths costs a bounded amount of memory; the first of each is recorded in the
    event journal (``handshake_refused``) at most :data:`WRONG_URL_EVENTS_PER_MINUTE` a
    minute after a burst. Nothing is written per attempt.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        record_event: EventRecorder | None,
        tasks: TaskOwner,
        size: int = MAX_WRONG_URLS,
    ) -> None:
        self._wall = wall_clock
        self._record = record_event
        self._tasks = tasks
        self._size = size
        self._events = TokenBucket(
            WRONG_URL_EVENTS_PER_MINUTE / 60, WRONG_URL_EVENTS_BURST, clock=clock
        )
        self._seen: OrderedDict[tuple[str, str], WrongUrl] = OrderedDict()

    def refused(
        self,
        address: str,
        raw_path: str,
        *,
        prefix: str,
        scheme: str,
        reached: str | None,
        configured: Callable[[str], bool],
    ) -> WrongUrl:
        """Count a refused handshake; returns its record (with the URL to use)."""
        now = self._wall()
        key = (address, raw_path[:300])
        entry = self._seen.get(key)
        if entry is not None:
            entry.attempts += 1
            entry.last_seen = now
            self._seen.move_to_end(key)
            return entry
        identity, reason = guess_identity(raw_path, prefix, configured)
        host = reached if reached and _HOST_HEADER.fullmatch(reached) else None
        url = f"{scheme}://{host or '<gateway address>'}{prefix}{identity or '<charger id>'}"
        entry = WrongUrl(
            address=address,
            path=loggable(raw_path, 200, quote=False),
            identity=identity,
            configured=identity is not None and configured(identity),
            reason=reason,
            url=url,
            first_seen=now,
            last_seen=now,
        )
        self._seen[key] = entry
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        self._journal(entry)
        return entry

    def throttled(self, address: str, raw_path: str) -> None:
        """Count an attempt refused by the failed-login back-off (HTTP 429) on a known path."""
        entry = self._seen.get((address, raw_path[:300]))
        if entry is not None:
            entry.attempts += 1
            entry.throttled += 1
            entry.last_seen = self._wall()

    def entries(self) -> list[WrongUrl]:
        """Newest first."""
        return list(reversed(self._seen.values()))

    def _journal(self, entry: WrongUrl) -> None:
        record = self._record
        if record is None or self._events.try_take() > 0:
            return
        who = entry.identity or "a charger"
        message = (
            f"refused {who} from {entry.address}: {entry.reason}; set its OCPP server URL "
            f"to {entry.url}"
        )
        self._tasks.spawn(self._write(record, message, entry), "wrong-url-event")

    @staticmethod
    async def _write(record: EventRecorder, message: str, entry: WrongUrl) -> None:
        await record(
            "handshake_refused",
            message,
            charger_id=entry.identity if entry.configured else None,
            data=entry.as_dict(),
        )


def guess_identity(
    raw_path: str, prefix: str, configured: Callable[[str], bool]
) -> tuple[str | None, str]:
    """The identity a path that holds none most likely meant, and what is wrong with it.

    ``/CP-1`` (no server path) means ``CP-1``; ``/ocpp/CP-1/CP-1`` (the identity twice, a
    charger that appends its id to a URL that has it) means ``CP-1``; ``/ocpp`` means none.
    A configured identity among the path's parts is preferred.
    """
    path = unquote(raw_path.split("?", 1)[0])
    parts = [p for p in path.split("/") if p]
    server_parts = {p for p in prefix.split("/") if p}
    names = [p for p in parts if CHARGER_ID_PATTERN.match(p) and p not in server_parts]
    guess = next((n for n in reversed(names) if configured(n)), names[-1] if names else None)
    if not path.startswith(prefix):
        if prefix.rstrip("/") == path.rstrip("/"):
            reason = f"no charger identity after {prefix}"
        else:
            reason = f"the path is not under {prefix}"
    elif not path[len(prefix) :]:
        reason = f"no charger identity after {prefix}"
    else:
        reason = (
            f"{loggable(path[len(prefix) :], 60)} is not a charger identity (one path part of "
            "1-48 letters, digits and . _ - * + = | @ ~)"
        )
    return guess, reason


def _where(exc: BaseException) -> str:
    """The failure's type and innermost line: the key that says "the same failure again"."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__qualname__}@{place}"


def _own_address(connection: ServerConnection) -> str | None:
    """The address the charger reached: where the connection came in, never its Host header
    (anyone can write that, and the advice is shown to the installer)."""
    local = connection.local_address
    if not isinstance(local, tuple) or len(local) < 2:
        return None
    ip, port = str(local[0]), int(local[1])
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode()).digest()


def _port_of(server: Server) -> int:
    return int(server.sockets[0].getsockname()[1])
