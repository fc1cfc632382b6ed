"""One client connection to the cloud CSMS per connected charger.

Each attempt is one ``await connect(...)``; the link keeps its own backoff (exponential with full
jitter, bounded by the configured delays) and retries every failure: a charger stays connected
to the gateway through any cloud outage, and an operator may still fix a refused identity at the
CSMS. State changes are logged once. While it waits out its backoff the link is registered with
the site's :class:`~edgegw.proxy.cloudreturn.CloudReturn`: it may be *probed* (make the next
attempt now; a failed probe leaves the backoff where it was) or *nudged* when another charger's
link gets through (retry after a short random delay, once between two connections), so the
outbox drains about a second after the cloud returns instead of up to a minute later.

Security Profiles towards the cloud: the scheme of ``cloud.url`` is fixed for the life of the
link. A ``wss://`` link that fails (bad certificate, TLS refused) is retried as ``wss://`` and
nothing else; there is no code path that rewrites it to ``ws://``. Profile 2 trusts
``cloud.ca_file`` alone when it is set (a pinned CA) and the system bundle otherwise; profile 3
adds a client certificate, the charger's own (``cloud_tls_cert_file``) or the gateway's.

OCPP version: the link offers the cloud the one subprotocol the charger negotiated
(:meth:`Upstream.use_subprotocol`; ``ocpp1.6`` until told otherwise). A cloud that does not
agree to ``ocpp1.6`` is retried as before (a 1.6 charger is answered by the gateway meanwhile).
A cloud that does not agree to ``ocpp2.0.1`` or ``ocpp2.1`` cannot be stood in for (the gateway
does not answer 2.x calls offline in this version): the charger is told at once, its
connection closed with 1002 and the reason ``the cloud does not accept ocppX`` (the refusal is
logged as a warning naming the version), and the link retries at the slow pace.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from edgegw.config import ChargerConfig, CloudConfig
from edgegw.ocpp.versions import is_v2
from edgegw.proxy.cloudreturn import CloudReturn
from edgegw.proxy.handshake_trim import trim_client_handshake
from edgegw.proxy.keepalive import Keepalive
from edgegw.proxy.sendnow import send_now
from edgegw.security.tls import TlsSetupError, client_context

log = logging.getLogger(__name__)

OCPP16 = Subprotocol("ocpp1.6")

VersionRefused = Callable[[str], Awaitable[None]]
"""Tells the charger (with the reason) that the cloud refused its OCPP version."""


class NotConnected(ConnectionError):
    """The cloud link for this charger is down."""


def backoff(min_delay: float, max_delay: float) -> Callable[[], Generator[float]]:
    """Exponential backoff with full jitter: delays in [d/2, d], d doubling up to max_delay."""

    def delays() -> Generator[float]:
        delay = min_delay
        while True:
            yield random.uniform(delay / 2, delay)
            delay = min(delay * 2, max_delay)

    return delays


def describe(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        hint = {
            401: " (wrong cloud credentials for this charger?)",
            403: " (forbidden by the CSMS)",
            404: " (identity unknown to the CSMS?)",
        }.get(status, "")
        return f"HTTP {status}{hint}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Upstream:
    """The cloud side of one charger's relay."""

    def __init__(
        self,
        charger_id: str,
        cloud: CloudConfig,
        charger: ChargerConfig | None,
        *,
        charger_authorization: str | None,
        user_agent: str | None,
        on_connected: Callable[[], None],
        on_failed: Callable[[], None],
        on_message: Callable[[str | bytes], None],
        on_disconnected: Callable[[str], None],
        cloud_return: CloudReturn | None = None,
        keepalive: Keepalive | None = None,
    ) -> None:
        self.charger_id = charger_id
        self._cloud = cloud
        self._on_connected = on_connected
        self._on_failed = on_failed
        self._on_message = on_message
        self._on_disconnected = on_disconnected
        self._ws: ClientConnection | None = None
        self._failing: str | None = None
        self._stopping = False
        self._cloud_return = cloud_return
        self._keepalive = keepalive  # pings the open link; None: websockets' own ping task
        self._wake: asyncio.Future[float | None] | None = None  # set while backing off
        self._attempt = "first"
        self.reconnected_by = ""
        """What started the attempt that last connected: ``first`` (no failure before it),
        ``backoff`` (the link's own), ``probe`` or ``nudge`` (see :mod:`.cloudreturn`)."""
        self._runner: asyncio.Task[Any] | None = None  # the task in run(), while it runs
        self.url = f"{cloud.url}/{charger_id}"
        self._headers = self._auth_headers(charger, charger_authorization)
        self._configured_credentials = charger is not None and charger.cloud_password is not None
        self._user_agent = user_agent
        self._subprotocol = OCPP16
        self._version_refused: VersionRefused | None = None
        self._ssl: ssl.SSLContext | None = None
        self._tls_error: str | None = None
        try:
            self._ssl = self.tls_context(cloud, charger)
        except TlsSetupError as exc:
            self._tls_error = str(exc)

    @staticmethod
    def _auth_headers(
        charger: ChargerConfig | None, charger_authorization: str | None
    ) -> dict[str, str]:
        if charger is not None and charger.cloud_password is not None:
            user = charger.cloud_username or charger.id
            token = f"{user}:{charger.cloud_password.get_secret_value()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(token).decode("ascii")}
        if charger_authorization is not None:
            # Invisible relay: the charger's own credentials go to the cloud unchanged.
            return {"Authorization": charger_authorization}
        return {}

    def use_credentials(self, charger_authorization: str | None) -> None:
        """A new connection of the charger: pass its credentials on from the next handshake.

        Credentials set for the charger in the configuration take precedence, as at start.
        """
        if self._configured_credentials or charger_authorization is None:
            return
        self._headers["Authorization"] = charger_authorization  # read at every handshake

    def use_subprotocol(self, name: str, on_refused: VersionRefused | None = None) -> None:
        """Offer the cloud ``name`` (the charger's negotiated version) from the next handshake.

        ``on_refused`` is awaited with a reason when the cloud refuses a 2.x version.
        """
        self._subprotocol = Subprotocol(name)
        self._version_refused = on_refused

    @property
    def subprotocol(self) -> str:
        """The OCPP version this link offers the cloud."""
        return self._subprotocol

    async def reconnect(self, reason: str) -> None:
        """Close the current connection; the link connects again at once."""
        ws = self._ws
        if ws is not None:
            await ws.close(1000, reason)

    @staticmethod
    def tls_context(cloud: CloudConfig, charger: ChargerConfig | None) -> ssl.SSLContext | None:
        """The TLS client context of this charger's cloud link (None for a ws:// url).

        Raises :class:`~edgegw.security.tls.TlsSetupError` when a file cannot be loaded.
        """
        if not cloud.tls:
            return None
        cert, key = cloud.tls_cert_file, cloud.tls_key_file
        if charger is not None and charger.cloud_tls_cert_file is not None:
            cert, key = charger.cloud_tls_cert_file, charger.cloud_tls_key_file
        return client_context(cloud.ca_file, cert, key)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def send(self, frame: str) -> None:
        ws = self._ws
        if ws is None:
            raise NotConnected(self.charger_id)
        try:
            await ws.send(frame)
        except ConnectionClosed as exc:
            raise NotConnected(self.charger_id) from exc

    def send_now(self, frame: str) -> bool:
        """Write ``frame`` at once if the cloud connection can take it without waiting; False:
        nothing written, await :meth:`send` (see :func:`edgegw.proxy.sendnow.send_now`)."""
        ws = self._ws
        return ws is not None and send_now(ws, frame)

    def _failed(self, exc: Exception, *, refused: bool = False) -> None:
        """An attempt failed (always retried); ``refused``: the cloud is up but said no."""
        reason = describe(exc)
        own = True  # the site's failure is logged once, by CloudReturn
        cloud_return = self._cloud_return
        if cloud_return is not None:
            refused = refused or (isinstance(exc, InvalidStatus) and exc.response.status_code < 500)
            own = cloud_return.waiting(self, probe=not refused, url=self._cloud.url, reason=reason)
        if self._failing != reason:
            level = logging.WARNING if own else logging.DEBUG
            log.log(level, "%s: cloud unreachable at %s: %s", self.charger_id, self.url, reason)
            self._failing = reason
        else:
            log.debug("%s: cloud still unreachable: %s", self.charger_id, reason)
        self._on_failed()

    def hint(self, delay: float) -> None:
        """Another link got through: retry after ``delay`` s rather than after the backoff."""
        wake = self._wake
        if self._ws is None and wake is not None and not wake.done():
            wake.set_result(delay)

    def probe(self) -> bool:
        """Make the next attempt now, if waiting out the backoff (the backoff stays as it was)."""
        wake = self._wake
        if self._ws is not None or wake is None or wake.done():
            return False
        wake.set_result(None)
        return True

    async def run(self) -> None:
        """Connect, relay, reconnect — until cancelled or closed (:meth:`close`).

        The link's attempts run in the caller's task (no task of its own: one task fewer per
        charger); :meth:`close` cancels that task and waits for its end.
        """
        if self._stopping:
            return
        self._runner = asyncio.current_task()
        try:
            if self._tls_error is not None:
                # Never fall back to plain text: without its TLS material the link stays down.
                log.error("%s: cloud link disabled: %s", self.charger_id, self._tls_error)
                self._on_failed()
                await asyncio.Event().wait()
            await self._attempts()
        finally:
            self._runner = None

    async def _attempts(self) -> None:
        loop = asyncio.get_running_loop()
        delays: Generator[float] | None = None
        retry_at: float | None = None  # when the backoff itself retries
        self._attempt = "first"
        while True:
            try:
                ws = await self._open()
            except Exception as exc:  # every failure is retried (see the module docstring)
                self._failed(exc)
                now = loop.time()
                if retry_at is None or now >= retry_at:  # (not after a probe: it keeps its turn)
                    delays = (
                        delays
                        or backoff(
                            self._cloud.reconnect_min_delay, self._cloud.reconnect_max_delay
                        )()
                    )
                    retry_at = now + next(delays)
                if await self._wait(retry_at):
                    retry_at = None  # nudged: the backoff goes on from the nudged attempt
                continue
            delays = retry_at = None
            try:
                wanted = self._subprotocol
                if ws.subprotocol != wanted:
                    await ws.close(1002, f"{wanted} required")
                    refused = self._version_refused
                    if is_v2(wanted) and refused is not None:
                        # Told first: the charger's connection also closes when the cloud fails.
                        await refused(f"the cloud does not accept {wanted}")
                    error = ConnectionError(f"cloud did not agree to subprotocol {wanted}")
                    self._failed(error, refused=True)
                    await self._wait(loop.time() + self._cloud.reconnect_max_delay)
                    continue
                started = time.monotonic()
                trim_client_handshake(ws)
                await self._session(ws)
            finally:
                await ws.close()
            if self._stopping:
                return
            self._attempt = "first"
            if time.monotonic() - started < self._cloud.reconnect_min_delay:
                # The cloud accepted and hung up at once: don't hammer it.
                await asyncio.sleep(random.uniform(0, self._cloud.reconnect_max_delay))

    async def _wait(self, deadline: float) -> bool:
        """Wait until ``deadline`` (loop time) or a probe; True when nudged (and waited for it)."""
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[float | None] = loop.create_future()
        self._wake = wake
        try:
            await asyncio.wait({wake}, timeout=max(0.0, deadline - loop.time()))
        finally:
            self._wake = None
        if not wake.done():
            wake.cancel()
            self._attempt = "backoff"
            return False
        delay = wake.result()
        if delay is None:
            self._attempt = "probe"
            return False
        self._attempt = "nudge"
        log.debug(  # CloudReturn logs one line for all of them
            "%s: other chargers reach the cloud again; retrying in %.1f s", self.charger_id, delay
        )
        await asyncio.sleep(delay)
        return True

    async def _open(self) -> ClientConnection:
        """One attempt: TCP, TLS, the WebSocket handshake."""
        kwargs: dict[str, Any] = {}
        if self._ssl is not None:
            kwargs["ssl"] = self._ssl
        return await connect(
            self.url,
            subprotocols=[self._subprotocol],
            additional_headers=self._headers,
            user_agent_header=self._user_agent,
            proxy=None,
            compression=None,
            open_timeout=self._cloud.connect_timeout,
            close_timeout=2,
            ping_interval=None
            if self._keepalive is not None
            else self._cloud.ping_interval or None,
            ping_timeout=self._cloud.ping_timeout,
            max_size=self._cloud.max_message_size,
            logger=logging.getLogger("edgegw.websockets.client"),
            **kwargs,
        )

    async def _session(self, ws: ClientConnection) -> None:
        self._failing = None
        self._ws = ws
        self.reconnected_by = self._attempt
        if self._cloud_return is not None:
            self._cloud_return.got_through(self)
        log.info("%s: cloud link up (%s)", self.charger_id, self.url)
        self._on_connected()
        reason = "closed"
        if self._keepalive is not None:
            self._keepalive.register(ws, self._cloud.ping_interval, self._cloud.ping_timeout)
        try:
            async for message in ws:
                self._on_message(message)
        except ConnectionClosed as exc:
            reason = f"code {exc.rcvd.code if exc.rcvd else 1006}"
        finally:
            if self._keepalive is not None:
                self._keepalive.unregister(ws)
            self._ws = None
            if self._cloud_return is not None:
                self._cloud_return.disconnected(self)
            if ws.close_code is not None:
                reason = f"code {ws.close_code} {ws.close_reason}".strip()
            level = logging.INFO if self._stopping else logging.WARNING
            log.log(level, "%s: cloud link down (%s)", self.charger_id, reason)
            self._on_disconnected(reason)

    async def close(self) -> None:
        """Close the cloud connection for good (the charger has gone, the cloud is owed nothing)."""
        self._stopping = True
        if self._cloud_return is not None:
            self._cloud_return.discard(self)
        ws = self._ws
        if ws is not None:
            await ws.close(1001, "charger disconnected")
        runner = self._runner
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel("charger disconnected")
            await asyncio.wait({runner})
