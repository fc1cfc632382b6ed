"""Which TCP connections may start a handshake at all.

Checked the moment a connection is accepted, before any TLS or HTTP work is spent on it: the
source must be in the allow-list (when one is configured), its address may hold only so many
connections at once, and only so many connections in total may be in their opening handshake
(TLS plus HTTP upgrade). Each admitted connection holds a :class:`Ticket` until it closes.

IPv6 sources are counted per /64, the block one subscriber usually controls, so a single host
cannot dodge the per-address limit by rotating through its own addresses.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(Exception):
    """A connection refused at accept; ``limit`` names the setting that refused it."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message


def parse_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_key(host: str) -> str:
    """The key limits are counted under: the IPv4 address, or the IPv6 /64."""
    address = parse_address(host)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address) if address is not None else host


@dataclass(eq=False)
class Ticket:
    """One admitted connection; pending until :meth:`opened`, counted until :meth:`close`."""

    guard: ConnectionGuard
    host: str
    key: str
    started: float
    abort: Callable[[], None] | None = None
    pending: bool = field(default=True)
    closed: bool = field(default=False)

    def opened(self) -> None:
        """The WebSocket handshake completed: no longer a pending handshake."""
        if self.pending and not self.closed:
            self.pending = False
            self.guard._pending.discard(self)

    def close(self) -> None:
        """The connection ended (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.guard._pending.discard(self)
        count = self.guard._per_key.get(self.key, 0) - 1
        if count > 0:
            self.guard._per_key[self.key] = count
        else:
            self.guard._per_key.pop(self.key, None)


class ConnectionGuard:
    """Admission control shared by every listener of one server."""

    def __init__(
        self,
        *,
        allowed_networks: Sequence[Network] = (),
        max_per_address: int = 16,
        max_pending: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_networks = tuple(allowed_networks)
        self.max_per_address = max_per_address
        self.max_pending = max_pending
        self._clock = clock
        self._per_key: dict[str, int] = {}
        self._pending: set[Ticket] = set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def connections_from(self, host: str) -> int:
        return self._per_key.get(address_key(host), 0)

    def allowed(self, host: str) -> bool:
        if not self.allowed_networks:
            return True
        address = parse_address(host)
        return address is not None and any(address in net for net in self.allowed_networks)

    def admit(self, host: str) -> Ticket:
        """A ticket for a new connection from ``host``, or :class:`Refused`."""
        if not self.allowed(host):
            raise Refused("allowed_networks", f"{host} is not in server.allowed_networks")
        key = address_key(host)
        if self._per_key.get(key, 0) >= self.max_per_address:
            raise Refused(
                "max_connections_per_address",
                f"{key} already has {self.max_per_address} connection(s) "
                "(server.max_connections_per_address)",
            )
        if len(self._pending) >= self.max_pending:
            raise Refused(
                "max_pending_handshakes",
                f"{self.max_pending} handshakes already pending (server.max_pending_handshakes)",
            )
        ticket = Ticket(self, host, key, self._clock())
        self._per_key[key] = self._per_key.get(key, 0) + 1
        self._pending.add(ticket)
        return ticket

    def abort_pending(self) -> None:
        """Drop every connection still in its handshake (the server is stopping)."""
        for ticket in list(self._pending):
            if ticket.abort is not None:
                ticket.abort()
            ticket.close()
