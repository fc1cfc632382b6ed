"""A WebSocket server connection that enforces admission, TLS and the message rate.

websockets creates one connection object per accepted TCP connection (``create_connection``),
before any byte is read. :class:`GuardedConnection` uses that moment to apply
:mod:`~edgegw.security.admission` (allow-list, per-address and pending-handshake limits) and,
on a TLS listener, runs the TLS handshake itself with ``loop.start_tls``: that way a disallowed
source costs no TLS work, and a failed handshake (wrong CA, expired certificate, plain ``ws://``
sent to the TLS port) gets a log line naming the source, which asyncio would otherwise swallow.

Messages read through ``async for`` are paced by a token bucket per charger identity (shared by
its connections, so reconnecting buys no fresh allowance): a charger above
``max_messages_per_second`` is slowed down (TCP back-pressure does the rest), and one that stays
above it for ``flood_close_after`` seconds is closed with 1008 (policy violation). A charger's
answers to calls sent to it (CALLRESULT, CALLERROR) are not counted, up to the number of calls
sent: answering the cloud quickly is never punished, and unsolicited answers still are.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.typing import Data, DataLike

from edgegw.proxy.sendnow import send_now
from edgegw.security.admission import ConnectionGuard, Refused, Ticket
from edgegw.security.loggable import loggable
from edgegw.security.quiet_log import QuietLog
from edgegw.security.throttle import Buckets, TokenBucket
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

FLOOD_CLOSE_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class ListenerPolicy:
    """What one listener enforces; shared by all its connections."""

    guard: ConnectionGuard
    tasks: TaskOwner
    quiet: QuietLog
    tls: ssl.SSLContext | None = None
    handshake_timeout: float = 10.0
    message_rate: float = 0.0  # 0: unlimited
    message_burst: int = 60
    flood_close_after: float = 10.0
    max_message_size: int = 65536
    buckets: Buckets | None = None  # message-rate buckets per identity, shared by listeners
    clock: Callable[[], float] = field(default=time.monotonic)


def frame_type(message: Data) -> str:
    """The OCPP-J message type of a frame, read cheaply from its start: "2" (CALL), "3"
    (CALLRESULT), "4" (CALLERROR), or "" when the start does not say."""
    head = message[:16]
    text = head.decode("latin-1") if isinstance(head, bytes) else head
    text = text.lstrip()
    if not text.startswith("["):
        return ""
    text = text[1:].lstrip()
    return text[0] if len(text) > 1 and text[0] in "234" and text[1] in ", \t\r\n" else ""


def tls_failure(exc: BaseException) -> str:
    """A short, non-secret description of why a TLS handshake failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason == "HTTP_REQUEST":
            return "plain HTTP sent to the TLS port (the charger must use wss://)"
        if reason in ("WRONG_VERSION_NUMBER", "UNSUPPORTED_PROTOCOL"):
            return f"no common TLS version (TLS 1.2 or newer is required): {reason}"
        return reason or str(exc)
    if isinstance(exc, ConnectionAbortedError | TimeoutError):
        return "TLS handshake not completed in time (server.handshake_timeout)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _EarlyData(asyncio.Protocol):
    """Holds what arrives between the end of the TLS handshake and the hand-over."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class GuardedConnection(ServerConnection):
    """Use :func:`connection_class` to bind it to a listener's :class:`ListenerPolicy`."""

    policy: ClassVar[ListenerPolicy]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ticket: Ticket | None = None
        self.host = "?"
        self.identity: str | None = None
        self._attached = False
        self._bucket: TokenBucket | None = None
        self._flooding_since: float | None = None
        self._owed = 0  # calls sent to the charger not yet answered (their answers ride free)

    def identify(self, identity: str) -> None:
        """The charger this connection belongs to: its message rate is counted per identity."""
        self.identity = identity
        policy = self.policy
        if policy.message_rate > 0:
            self._bucket = (
                policy.buckets.get(identity)
                if policy.buckets is not None
                else TokenBucket(policy.message_rate, policy.message_burst, clock=policy.clock)
            )

    # ------------------------------------------------------------ accept and TLS

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self.host = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        policy = self.policy
        evicted = policy.guard.evicted
        try:
            ticket = policy.guard.admit(self.host)
        except Refused as exc:
            policy.quiet.warning(
                f"refused:{exc.limit}", "refused connection from %s: %s", self.host, exc.message
            )
            transport.abort()
            return
        if policy.guard.evicted != evicted:
            policy.quiet.warning(
                "evicted",
                "%d handshakes pending (server.max_pending_handshakes): dropped the oldest from "
                "%s, the address holding the most, to let %s in",
                policy.guard.max_pending,
                policy.guard.last_evicted,
                self.host,
            )
        self.ticket = ticket
        ticket.abort = transport.abort
        if policy.tls is None:
            self._attach(transport)
            return
        transport.pause_reading()
        policy.tasks.spawn(self._tls_handshake(transport, ticket, policy.tls), f"tls:{self.host}")

    async def _tls_handshake(
        self, raw: asyncio.Transport, ticket: Ticket, context: ssl.SSLContext
    ) -> None:
        if raw.is_closing() or ticket.closed:
            ticket.close()
            return
        early = _EarlyData()
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                raw,
                early,
                context,
                server_side=True,
                ssl_handshake_timeout=self.policy.handshake_timeout,
            )
        except asyncio.CancelledError:
            raw.abort()
            ticket.close()
            raise
        except Exception as exc:
            if not ticket.closed:  # closed: we aborted it ourselves (the server is stopping)
                reason = loggable(tls_failure(exc), quote=False)
                self.policy.quiet.warning(
                    f"tls:{reason}", "TLS handshake with %s failed: %s", self.host, reason
                )
            raw.abort()
            ticket.close()
            return
        if early.lost or ticket.closed or tls is None:
            if tls is not None:
                tls.abort()
            ticket.close()
            return
        ticket.abort = tls.abort
        tls.set_protocol(self)
        self._attach(tls)
        if early.data:
            self.data_received(bytes(early.data))
        if early.eof:
            self.eof_received()

    def _attach(self, transport: asyncio.BaseTransport) -> None:
        self._attached = True
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._attached:
            super().connection_lost(exc)
        ticket = self.ticket
        if ticket is None or ticket.closed:
            return
        timeout = self.policy.handshake_timeout
        if ticket.pending and self.policy.clock() - ticket.started >= timeout * 0.95:
            self.policy.quiet.warning(
                "handshake-timeout",
                "dropped %s: no complete opening handshake within %g s (server.handshake_timeout)",
                self.host,
                timeout,
            )
        ticket.close()

    def opened(self) -> None:
        """The WebSocket handshake succeeded: it no longer counts as a pending handshake."""
        if self.ticket is not None:
            self.ticket.opened()

    @property
    def tls_object(self) -> ssl.SSLObject | None:
        """The TLS session of this connection (None on a plain listener)."""
        obj = self.transport.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    # ------------------------------------------------------------ messages

    def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        *,
        text: bool | None = None,
    ) -> Coroutine[Any, Any, None]:
        # (Not a coroutine itself: websockets' send is the one awaited, no frame in between.)
        if isinstance(message, str | bytes) and frame_type(message) == "2":
            self._owed += 1
        return super().send(message, text=text)

    def send_now(self, frame: str) -> bool:
        """Write ``frame`` at once if the connection can take it without waiting; False:
        nothing written, await :meth:`send` (see :func:`edgegw.proxy.sendnow.send_now`)."""
        if not send_now(self, frame):
            return False
        if frame_type(frame) == "2":
            self._owed += 1
        return True

    async def __aiter__(self) -> AsyncIterator[Data]:
        try:
            while True:
                message = await self.recv()
                if self._owed > 0 and frame_type(message) in ("3", "4"):
                    self._owed -= 1  # an answer to a call sent to it: not counted
                else:
                    await self._pace()
                yield message
        except ConnectionClosedOK:
            return
        except ConnectionClosedError as exc:
            self._log_violation(exc)
            raise

    async def _pace(self) -> None:
        bucket = self._bucket
        if bucket is None:
            return
        wait = bucket.take()
        if wait <= 0:
            self._flooding_since = None
            return
        policy = self.policy
        now = policy.clock()
        who = self.identity or "?"
        if self._flooding_since is None:
            self._flooding_since = now
            policy.quiet.warning(
                f"rate:{who}",
                "%s from %s sends more than %g messages/s (server.max_messages_per_second); "
                "slowing it down",
                who,
                self.host,
                policy.message_rate,
            )
        elif now - self._flooding_since >= policy.flood_close_after:
            policy.quiet.warning(
                f"flood:{who}",
                "%s from %s stayed above %g messages/s for %g s "
                "(server.flood_close_after); closing it (1008)",
                who,
                self.host,
                policy.message_rate,
                policy.flood_close_after,
            )
            try:
                # A flooder may not read either: don't wait the full close_timeout for it.
                async with asyncio.timeout(FLOOD_CLOSE_TIMEOUT):
                    await self.close(1008, "message rate limit exceeded")
            except TimeoutError:
                self.transport.abort()
                await self.wait_closed()
            raise self.protocol.close_exc
        await asyncio.sleep(wait)

    def _log_violation(self, exc: ConnectionClosedError) -> None:
        sent = exc.sent
        if sent is None or exc.rcvd_then_sent:  # the charger closed first: its business
            return
        who = self.identity or "?"
        if sent.code == 1009:
            self.policy.quiet.warning(
                f"size:{who}",
                "closed %s from %s: a message exceeded server.max_message_size (%d bytes)",
                who,
                self.host,
                self.policy.max_message_size,
            )
        elif sent.code in (1002, 1007):
            self.policy.quiet.warning(
                f"protocol:{who}",
                "closed %s from %s: WebSocket protocol violation (%d %s)",
                who,
                self.host,
                sent.code,
                loggable(sent.reason, quote=False),
            )


def connection_class(policy: ListenerPolicy) -> type[GuardedConnection]:
    """A :class:`GuardedConnection` subclass bound to ``policy`` (for ``create_connection``)."""

    class BoundConnection(GuardedConnection):
        pass

    BoundConnection.policy = policy
    return BoundConnection
