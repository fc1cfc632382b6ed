"""The authorisation cache: what the cloud last said about each idTag, for when it cannot say.

OCPP 1.6 §3.5.1 describes the cache a charge point keeps, and the gateway keeps the same one on
behalf of its chargers: every ``idTagInfo`` the cloud returns (Authorize, StartTransaction,
StopTransaction) updates the entry of that idTag, valid or not. When the cloud is unreachable
the gateway decides from it. Differences from a charger's cache, and why:

* An entry is keyed by the idTag exactly as the charger presented it (case-insensitively): the
  cloud answered about that string, and a charger that writes cards differently sends a
  different string that the cloud may well not know.
* An entry is trusted until the cloud's ``expiryDate`` (then it reads ``Expired``), and never
  longer than ``max_age`` after the cloud last said it (``cache_days`` in the config): a card
  the cloud blocked a month ago while the site was offline must not keep working forever.
  An entry older than that is ignored as if it were not there.
* ``ConcurrentTx`` is stored as ``Accepted``: it is about one transaction, not the card.
* Tags on a local list are never cached (spec); the authorizer enforces that, since only it
  knows the lists.
* Two key spaces: a card's idTag (1.6, or a 2.x ``ISO14443``/``ISO15693`` UID) and a 2.x token
  that is no card UID (``KeyCode``, ``eMAID``, ``Central``...: ``literal``). The cloud answered
  about one of them: an RFID card accepted as ``12345678`` says nothing of a keypad code
  ``12345678``, nor the other way round. The space is part of the key (:data:`CacheKey`) and a
  column of its own on disk, never a prefix of the text (the text is stripped).

An answer the cloud repeats (same ``idTagInfo``) refreshes the entry in memory but is written to
disk at most once per :data:`REWRITE_AFTER` (or a tenth of ``max_age``, if shorter): most answers
repeat the last one, and each write costs the SD card. After a restart such an entry reads as
learnt when it was last written, so it may be trusted up to that much less long.

The cache is bounded: when full, not-valid entries go first (refusals, then entries whose
``expiryDate`` passed), then the oldest valid ones; the answer just learned is never the one
evicted (a fresh Blocked is the most useful entry there is). Both orders are kept incrementally, so
learning is O(1); finding entries past their ``expiryDate`` is a sweep, done at most once per
``sweep_interval`` and only when the cache is full.

Pure in-memory logic: :mod:`edgegw.store.cards` persists the entries, the authorizer wires both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from edgegw.auth.locallist import AuthStatus, IdTagInfo

DAY: Final = 86_400.0
REWRITE_AFTER: Final = 3600.0
"""How long an unchanged answer may go without being written again (seconds)."""


CacheKey = tuple[str, bool]
"""An entry's key: the idTag's text (:func:`cache_key`) and whether it is a 2.x token."""


def cache_key(id_tag: str, literal: bool = False) -> CacheKey:
    """idTags are ``CiString20``: compared case-insensitively, ignoring stray spaces; a 2.x
    token that is no card UID (``literal``) has a key space of its own."""
    return id_tag.strip().upper(), literal


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """The cloud's last word about ``id_tag`` (a :func:`cache_key`'s text), heard at
    ``learned_at``; ``literal``: about a 2.x token that is no card UID."""

    id_tag: str
    info: IdTagInfo
    learned_at: float
    stored_at: float | None = None
    """``learned_at`` of the row on disk when it is older (an unchanged answer not rewritten)."""
    literal: bool = False

    @property
    def key(self) -> CacheKey:
        return self.id_tag, self.literal


@dataclass(frozen=True, slots=True)
class Learned:
    """What :meth:`AuthCache.learn` changed: the entry and the keys evicted for it.

    ``unchanged``: the cloud repeated what the disk already says, recently enough that the
    row need not be written again (``evicted`` is then empty).
    """

    entry: CacheEntry
    evicted: tuple[CacheKey, ...]
    unchanged: bool = False


class AuthCache:
    """Bounded cache of idTagInfo by idTag. ``size`` 0 disables it (nothing is learned)."""

    __slots__ = ("_invalid", "_last_sweep", "_valid", "max_age", "size", "sweep_interval")

    def __init__(self, *, size: int, max_age: float, sweep_interval: float = 3600.0) -> None:
        if size < 0 or max_age <= 0:
            raise ValueError("cache size must be >= 0 and max_age > 0")
        self.size = size
        self.max_age = max_age
        self.sweep_interval = sweep_interval
        # Learned order (oldest first) within each class: eviction takes the first of _invalid,
        # else the first of _valid.
        self._valid: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self._invalid: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self._last_sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._valid) + len(self._invalid)

    def __iter__(self) -> Iterator[CacheEntry]:
        """Entries, not-valid first, each class oldest first (the eviction order)."""
        yield from self._invalid.values()
        yield from self._valid.values()

    def load(self, entries: Iterable[CacheEntry], now: float) -> list[CacheKey]:
        """Fill from storage (any order). Returns the keys evicted because they do not fit."""
        for entry in sorted(entries, key=lambda e: e.learned_at):
            self._insert(entry)
        return self._shrink(now)

    def get(self, id_tag: str, now: float, *, literal: bool = False) -> CacheEntry | None:
        """The entry for ``id_tag`` (``literal``: the 2.x token's), or None if there is none or
        it is older than max_age."""
        key = cache_key(id_tag, literal)
        entry = self._valid.get(key) or self._invalid.get(key)
        if entry is None or now - entry.learned_at >= self.max_age:
            return None
        return entry

    def learn(
        self, id_tag: str, info: IdTagInfo, now: float, *, literal: bool = False
    ) -> Learned | None:
        """Record the cloud's answer (``literal``: about a 2.x token that is no card UID);
        None when the cache is disabled."""
        if self.size == 0:
            return None
        if info.status is AuthStatus.CONCURRENT_TX:
            info = IdTagInfo(AuthStatus.ACCEPTED, info.expiry, info.parent_id)
        key = cache_key(id_tag, literal)
        text = key[0]
        before = self._valid.pop(key, None) or self._invalid.pop(key, None)
        evicted = self._shrink(now, room_for=1)
        if before is not None and before.info == info and not evicted:
            stored = before.learned_at if before.stored_at is None else before.stored_at
            if now - stored < min(REWRITE_AFTER, self.max_age / 10):
                entry = CacheEntry(text, info, now, stored_at=stored, literal=literal)
                self._insert(entry)
                return Learned(entry, (), unchanged=True)
        entry = CacheEntry(text, info, now, literal=literal)
        self._insert(entry)
        return Learned(entry, tuple(evicted))

    def discard(self, id_tag: str, *, literal: bool = False) -> bool:
        key = cache_key(id_tag, literal)
        return self._valid.pop(key, None) is not None or self._invalid.pop(key, None) is not None

    def _insert(self, entry: CacheEntry) -> None:
        target = self._valid if entry.info.status.valid else self._invalid
        target[entry.key] = entry

    def _shrink(self, now: float, room_for: int = 0) -> list[CacheKey]:
        evicted: list[CacheKey] = []
        while len(self) + room_for > self.size and len(self):
            if not self._invalid and now - self._last_sweep >= self.sweep_interval:
                self._last_sweep = now
                self._demote_expired(now)
            source = self._invalid or self._valid
            key, _ = source.popitem(last=False)
            evicted.append(key)
        return evicted

    def _demote_expired(self, now: float) -> None:
        """Move valid entries whose expiryDate or max_age passed to the not-valid class."""
        stale = [
            e
            for e in self._valid.values()
            if e.info.expired(now) or now - e.learned_at >= self.max_age
        ]
        for entry in sorted(stale, key=lambda e: e.learned_at):
            del self._valid[entry.key]
            self._invalid[entry.key] = entry
