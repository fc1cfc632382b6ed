"""Which TCP connections may start a handshake at all.

Checked the moment a connection is accepted, before any TLS or HTTP work is spent on it: the
source must be in the allow-list (when one is configured), its address may hold only so many
connections at once, and only so many connections in total may be in their opening handshake
(TLS plus HTTP upgrade). Each admitted connection holds a :class:`Ticket` until it closes.

Slow handshakes (slowloris) cannot lock the chargers out:

- one address may hold only ``max_pending_per_address`` handshakes at once, so a few hosts
  cannot fill the shared budget;
- when the budget is full, a newcomer takes the slot of the oldest pending handshake of the
  address holding the most (fair share): a host that keeps connections open without finishing
  them loses them to the others, and a charger's handshake, which takes milliseconds, gets
  through; a handshake whose password the server is checking is not taken (its time is the
  server's own work: dropping it would waste the check and, in a reconnect storm, every check);
- addresses a configured charger logged in from (:class:`TrustedSources`, learnt at each login
  and read back from the database at start) have a reserve outside the shared budget: known
  chargers get through however many other sources are in their handshake.

IPv6 sources are counted per /64, the block one subscriber usually controls, so a single host
cannot dodge the per-address limit by rotating through its own addresses.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Addresses remembered per charger identity (a charger moves between a few at most).
ADDRESSES_PER_IDENTITY: Final = 2


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
    reserved: bool = False  # admitted from a trusted address's reserve
    abort: Callable[[], None] | None = None
    pending: bool = field(default=True)
    closed: bool = field(default=False)
    # The server is checking its password: how long it holds its slot is up to the server's
    # own work, not the peer, so it is not a slow handshake to drop for a newcomer.
    checking: bool = field(default=False)

    def opened(self) -> None:
        """The WebSocket handshake completed: no longer a pending handshake."""
        if self.pending and not self.closed:
            self.pending = False
            self.guard._unpend(self)

    def drop(self) -> None:
        """Abort the connection and free its slots (eviction, or the server stopping)."""
        if self.abort is not None:
            self.abort()
        self.close()

    def close(self) -> None:
        """The connection ended (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self.pending:
            self.guard._unpend(self)
        count = self.guard._per_key.get(self.key, 0) - 1
        if count > 0:
            self.guard._per_key[self.key] = count
        else:
            self.guard._per_key.pop(self.key, None)


class TrustedSources:
    """The addresses each configured charger logged in from (its last few, per identity).

    Only logins of configured chargers are recorded, so the set is bounded by the charger list.
    """

    def __init__(self, per_identity: int = ADDRESSES_PER_IDENTITY) -> None:
        self._per_identity = per_identity
        self._by_identity: dict[str, list[str]] = {}
        self._refs: dict[str, int] = {}

    def add(self, identity: str, host: str) -> None:
        key = address_key(host)
        keys = self._by_identity.setdefault(identity, [])
        if key in keys:
            keys.remove(key)
            keys.append(key)
            return
        keys.append(key)
        self._refs[key] = self._refs.get(key, 0) + 1
        while len(keys) > self._per_identity:
            self._release(keys.pop(0))

    def forget(self, identity: str) -> None:
        for key in self._by_identity.pop(identity, []):
            self._release(key)

    def identities(self) -> list[str]:
        return list(self._by_identity)

    def known(self, identity: str) -> bool:
        """A login of ``identity`` was recorded (this run or a previous one)."""
        return identity in self._by_identity

    def trusted(self, host: str) -> bool:
        """Some configured charger logged in from ``host`` (its address or IPv6 /64)."""
        return address_key(host) in self._refs

    def trusted_for(self, identity: str, host: str) -> bool:
        return address_key(host) in self._by_identity.get(identity, ())

    def _release(self, key: str) -> None:
        count = self._refs.get(key, 0) - 1
        if count > 0:
            self._refs[key] = count
        else:
            self._refs.pop(key, None)


class ConnectionGuard:
    """Admission control shared by every listener of one server."""

    def __init__(
        self,
        *,
        allowed_networks: Sequence[Network] = (),
        max_per_address: int = 16,
        max_pending: int = 64,
        max_pending_per_address: int = 8,
        trusted: TrustedSources | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_networks = tuple(allowed_networks)
        self.max_per_address = max_per_address
        self.max_pending = max_pending
        self.max_pending_per_address = max_pending_per_address
        self.trusted = trusted if trusted is not None else TrustedSources()
        self._clock = clock
        self._per_key: dict[str, int] = {}
        # Pending handshakes per address, oldest first; those in the shared budget counted apart.
        self._pending: dict[str, list[Ticket]] = {}
        self._shared = 0
        self.evicted = 0  # handshakes dropped to make room (fair share), and the last one's host
        self.last_evicted = ""

    @property
    def pending(self) -> int:
        return sum(len(tickets) for tickets in self._pending.values())

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
        pending_here = len(self._pending.get(key, ()))
        if pending_here >= self.max_pending_per_address:
            raise Refused(
                "max_pending_per_address",
                f"{key} already has {pending_here} handshake(s) pending "
                "(server.max_pending_per_address)",
            )
        reserved = self.trusted.trusted(host)
        if not reserved and self._shared >= self.max_pending:
            victim = self._victim(pending_here)
            if victim is None:
                raise Refused(
                    "max_pending_handshakes",
                    f"{self.max_pending} handshakes already pending "
                    "(server.max_pending_handshakes)",
                )
            self.evicted += 1
            self.last_evicted = victim.host
            victim.drop()
        ticket = Ticket(self, host, key, self._clock(), reserved)
        self._per_key[key] = self._per_key.get(key, 0) + 1
        self._pending.setdefault(key, []).append(ticket)
        if not reserved:
            self._shared += 1
        return ticket

    def _victim(self, newcomer_pending: int) -> Ticket | None:
        """The oldest shared-budget handshake of the address holding the most of them, if that
        address holds more than the newcomer's."""
        heaviest: list[Ticket] = []
        for tickets in self._pending.values():
            shared = [t for t in tickets if not t.reserved and not t.checking]
            if len(shared) > len(heaviest) or (
                shared and len(shared) == len(heaviest) and shared[0].started < heaviest[0].started
            ):
                heaviest = shared
        return heaviest[0] if len(heaviest) > newcomer_pending else None

    def _unpend(self, ticket: Ticket) -> None:
        tickets = self._pending.get(ticket.key)
        if tickets is None or ticket not in tickets:
            return
        tickets.remove(ticket)
        if not tickets:
            del self._pending[ticket.key]
        if not ticket.reserved:
            self._shared -= 1

    def abort_pending(self) -> None:
        """Drop every connection still in its handshake (the server is stopping)."""
        for tickets in list(self._pending.values()):
            for ticket in list(tickets):
                ticket.drop()
