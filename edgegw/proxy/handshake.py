"""What the HTTP upgrade checks before a WebSocket exists: the identity in the path, the
transport against the charger's Security Profile, the password (counted before it is checked,
with back-off that never locks out the right one) and the reconnect rate.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Final
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from edgegw.auth.passwords import verify_password
from edgegw.config import CHARGER_ID_PATTERN, ChargerConfig, Config
from edgegw.proxy.unknownids import UnknownRecorder
from edgegw.proxy.wrongurls import WrongUrls
from edgegw.security.admission import ConnectionGuard, TrustedSources, address_key
from edgegw.security.guarded import GuardedConnection
from edgegw.security.loggable import loggable
from edgegw.security.quiet_log import QuietLog
from edgegw.security.throttle import Buckets, LoginThrottle
from edgegw.security.tls import common_name, peer_certificate
from edgegw.security.verified import VerifiedPasswords, password_check_slots
from edgegw.store.events import EventRecorder
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner

# scrypt needs ~16 MiB per check: one check per core at once (2 to 8), never more, so a burst
# of guesses cannot exhaust a small box's memory.
CONCURRENT_PASSWORD_CHECKS = password_check_slots()


WWW_AUTHENTICATE = {"WWW-Authenticate": 'Basic realm="edgegw", charset="UTF-8"'}


# Accepted connections one identity may make at once before max_connects_per_minute paces it.
CONNECT_BURST: Final = 20


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


log = logging.getLogger("edgegw.proxy.server")


class _HandshakeChecks:
    """The server's state (limits, throttles, verified passwords, listeners) and the checks an
    HTTP upgrade goes through; :class:`~edgegw.proxy.server.OcppServer` adds the listeners."""

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
        # Keyed digests of verified passwords: scrypt is deliberately slow, reconnects are not.
        self._verified = VerifiedPasswords()
        self._checks: dict[tuple[str, str, bytes], asyncio.Task[bool]] = {}  # scrypt checks running
        self._plain_server: Server | None = None
        self._tls_server: Server | None = None

    def _identity(self, path: str) -> str | None:
        path = path.split("?", 1)[0]
        if not path.startswith(self._prefix):
            return None
        identity = unquote(path[len(self._prefix) :])
        return identity if CHARGER_ID_PATTERN.match(identity) else None

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
            if self._verified.matches(identity, stored, credentials[1]):
                # A password verified before is accepted even while the identity is in
                # back-off: someone guessing a charger's password cannot lock the charger out.
                # It leaves the identity's failures as they are: the guesses still count.
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
            ticket = connection.ticket
            if ticket is not None:
                ticket.checking = True  # not dropped for a newcomer: see security.admission
            check = self._verify(identity, stored, credentials[1])
            try:
                ok = await asyncio.shield(check)
            except asyncio.CancelledError:
                if trusted:  # the handshake timed out: a wrong password still counts
                    check.add_done_callback(lambda done: self._count_late(done, source, account))
                raise
            finally:
                if ticket is not None:
                    ticket.checking = False
            if ok:
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

    def _verify(self, identity: str, stored: str, presented: str) -> asyncio.Task[bool]:
        """The scrypt check of ``presented``: one per identity and password at a time (a
        charger retrying while its first attempt waits shares that check), run to its end even
        if the handshake that asked times out, its success remembered: in a reconnect storm the
        charger's next attempt then finds it verified instead of queueing for scrypt again."""
        key = (identity, stored, self._verified.digest(identity, presented))
        running = self._checks.get(key)
        if running is None:
            running = self._tasks.spawn(
                self._scrypt(identity, stored, presented), f"password-check:{identity}"
            )
            self._checks[key] = running
            running.add_done_callback(lambda _: self._checks.pop(key, None))
        return running

    async def _scrypt(self, identity: str, stored: str, presented: str) -> bool:
        async with self._password_checks:
            ok = await asyncio.to_thread(verify_password, stored, presented)
        if ok:
            self._verified.remember(identity, stored, presented)
        return ok

    def _count_late(self, check: asyncio.Task[bool], source: str, account: str) -> None:
        if not check.cancelled() and check.exception() is None and not check.result():
            self._logins.failed(source)
            self._accounts.failed(account)

    def login_failures(self, identity: str) -> int:
        """Failed logins counted against ``identity`` (its back-off starts after
        ``server.failed_logins_before_backoff``)."""
        return self._accounts.failures("id:" + identity)

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
