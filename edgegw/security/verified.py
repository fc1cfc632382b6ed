"""Charger passwords verified since the daemon started, so that a reconnect skips scrypt.

scrypt is slow on purpose (~50 ms and 16 MiB per check on an x86 core, several times that on a
Raspberry Pi-class one), to make the hashes in the configuration expensive to crack. A charger
that reconnects sends the same password again; checking it with scrypt every time only makes
a reconnect storm (a switch reboot, the cloud dropping 2.x chargers) CPU-bound for minutes.

After scrypt has accepted a password, :class:`VerifiedPasswords` keeps, in memory only,
``HMAC-SHA256(key, identity, password)`` under a key drawn at random when the daemon starts and
never written anywhere, together with the stored hash it was verified against. A later
attempt by the same identity with the same password is accepted by a constant-time compare.
Everything else goes the full way (the failed-login throttle, then scrypt): a different
password misses the cache, so a guess costs what it did; a password changed in the
configuration misses too (the entry holds the hash it was verified against, and
:meth:`keep_only` drops entries whose charger or hash is gone on reload).

What this gives someone who can read the daemon's memory: nothing they could not have without
it. Such a reader sees each charger's password in plain text in the HTTP request of its next
login, and the cloud credentials in the configuration the daemon holds; the digest is a keyed
hash of a password it already has. Nothing reaches the disk: after a restart the cache is
empty and every charger is checked with scrypt once (that cost is bounded by the number of
cores, see :func:`password_check_slots`). The identity is part of the MAC, so two chargers
with the same password do not get the same digest. Entries are only ever made for configured
identities after a successful check, so memory is bounded by the charger list.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

# scrypt with today's parameters needs 16 MiB per check: at most this many run at once whatever
# the core count, so a burst of guesses cannot exhaust a small box's memory.
MAX_PASSWORD_CHECKS = 8


def password_check_slots() -> int:
    """How many password checks may run at once: one per core this process may run on (at least
    two, at most :data:`MAX_PASSWORD_CHECKS`). hashlib's scrypt releases the GIL, so on a 4-core
    Pi a restart's checks of every charger take a quarter of the time, not half."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(2, min(cores, MAX_PASSWORD_CHECKS))


class VerifiedPasswords:
    """The passwords scrypt accepted since start, as keyed digests per identity."""

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._entries: dict[str, tuple[str, bytes]] = {}

    def digest(self, identity: str, presented: str) -> bytes:
        """The keyed digest of ``presented`` for ``identity`` (the same within one process)."""
        message = identity.encode("utf-8") + b"\x00" + presented.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def matches(self, identity: str, stored: str, presented: str) -> bool:
        """True if ``presented`` was verified against ``stored`` for ``identity`` before."""
        entry = self._entries.get(identity)
        if entry is None or entry[0] != stored:
            return False
        return hmac.compare_digest(entry[1], self.digest(identity, presented))

    def remember(self, identity: str, stored: str, presented: str) -> None:
        """Call only after scrypt accepted ``presented`` against ``stored``."""
        self._entries[identity] = (stored, self.digest(identity, presented))

    def keep_only(self, current_hash: Callable[[str], str | None]) -> None:
        """Drop every entry whose identity's hash is no longer the one it was verified against
        (``current_hash`` gives an identity's hash now, None when it has none or is gone)."""
        for identity, (stored, _) in list(self._entries.items()):
            if current_hash(identity) != stored:
                del self._entries[identity]

    def __len__(self) -> int:
        return len(self._entries)
