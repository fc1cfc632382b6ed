"""The card authority's state: installer cards, the cloud's list and cache, detected idTag
formats, change callbacks, and the effective local list grouped by rank. The layers above
(:mod:`~edgegw.auth.cloudanswers`, :mod:`~edgegw.auth.installercards`,
:class:`~edgegw.auth.authorizer.Authorizer`) add behaviour, not state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from edgegw.auth.access import Access
from edgegw.auth.cache import DAY, AuthCache
from edgegw.auth.decision import _rank
from edgegw.auth.idtags import CardId, CardIndex, CardLookup, IdTagFormat
from edgegw.auth.locallist import AuthStatus, Card, CloudList, IdTagInfo, ListEntry, ListSource
from edgegw.config import AuthConfig
from edgegw.store.cards import CardStore, DetectedFormat
from edgegw.tasks import TaskOwner

_CONFIRMATIONS: Final = 3  # matches in a row that move a detected idTag format to another


_YIELD_EVERY: Final = 2000  # bulk index updates give the event loop a turn this often


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :meth:`Authorizer.import_csv` changed."""

    added: int
    updated: int
    unchanged: int
    removed: int


ChangeCallback = Callable[[], None]


@dataclass(slots=True)
class _Groups:
    """The effective list split by rank: [valid, blocked, other refused] each."""

    shared: tuple[list[ListEntry], list[ListEntry], list[ListEntry]]
    restricted: dict[str, tuple[list[ListEntry], list[ListEntry], list[ListEntry]]]
    elsewhere: list[tuple[ListEntry, frozenset[str], ListEntry, frozenset[str]]]
    """Restricted cards as every *other* charger lists them (refused), with the chargers that
    list them as their own, then as the chargers where a share of it ended list them
    (``Expired``, as the gateway answers there) and those chargers: a charger that decides
    from its own list (offline, or LocalPreAuthorize) refuses a private bay's card instead of
    trusting an old cache entry."""

    @classmethod
    def build(cls, cards: Iterable[Card], cloud: CloudList, now: float, access: Access) -> _Groups:
        shared: tuple[list[ListEntry], list[ListEntry], list[ListEntry]] = ([], [], [])
        restricted: dict[str, tuple[list[ListEntry], list[ListEntry], list[ListEntry]]] = {}
        elsewhere: list[tuple[ListEntry, frozenset[str], ListEntry, frozenset[str]]] = []
        installer: set[str] = set()
        for card in sorted(cards, key=lambda c: c.key):
            installer.add(card.key)
            info = card.id_tag_info()
            entry = ListEntry(card.id, info, ListSource.INSTALLER)
            rank = _rank(info, now)
            standing, shared_until = access.places(card.key, card.chargers, now)
            if standing is None:
                shared[rank].append(entry)
                continue
            for charger_id in standing:
                restricted.setdefault(charger_id, ([], [], []))[rank].append(entry)
            refused = info if rank else IdTagInfo(AuthStatus.INVALID, None, info.parent_id)
            expired = info if rank else IdTagInfo(AuthStatus.EXPIRED, None, info.parent_id)
            places = standing | frozenset(shared_until)
            elsewhere.append(
                (
                    ListEntry(card.id, refused, ListSource.INSTALLER),
                    places,
                    ListEntry(card.id, expired, ListSource.INSTALLER),
                    access.ended_shares(card.key, card.chargers, now),
                )
            )
            for charger_id, until in shared_until.items():
                # A share's end is the entry's expiry: the charger refuses the card after it.
                end = datetime.fromtimestamp(until, UTC)
                ended = IdTagInfo(info.status, min(end, info.expiry or end), info.parent_id)
                listed = ListEntry(card.id, ended, ListSource.INSTALLER)
                restricted.setdefault(charger_id, ([], [], []))[_rank(ended, now)].append(listed)
        for cloud_entry in sorted(cloud, key=lambda e: e.key):
            if cloud_entry.key in installer:
                continue
            info = cloud_entry.info
            if info.status is AuthStatus.CONCURRENT_TX:
                info = IdTagInfo(AuthStatus.ACCEPTED, info.expiry, info.parent_id)
            shared[_rank(info, now)].append(ListEntry(cloud_entry.card, info, ListSource.CLOUD))
        return cls(shared, restricted, elsewhere)


async def _bulk(apply: Callable[[CardId], bool], cards: list[CardId]) -> None:
    for start in range(0, len(cards), _YIELD_EVERY):
        for card in cards[start : start + _YIELD_EVERY]:
            apply(card)
        if start + _YIELD_EVERY < len(cards):
            await asyncio.sleep(0)


log = logging.getLogger("edgegw.auth.authorizer")


class _AuthorizerState:
    """All of the card authority's state, its formats and its change notifications."""

    def __init__(
        self,
        store: CardStore,
        config: AuthConfig,
        *,
        formats: Mapping[str, IdTagFormat],
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._config = config
        self._configured = dict(formats)
        self._clock = clock
        self._cards: dict[str, Card] = {}
        self._installer = CardIndex()
        self._cloud = CloudList()
        self._cloud_index = CardIndex()
        self._cache = AuthCache(size=config.cache_size, max_age=config.cache_days * DAY)
        self._detected: dict[str, DetectedFormat] = {}
        self._candidates: dict[str, tuple[IdTagFormat, int]] = {}  # a format not yet confirmed
        self._callbacks: list[ChangeCallback] = []
        self._lock = asyncio.Lock()
        self._tasks = TaskOwner("authorizer")
        self._closed = False
        self._groups: _Groups | None = None
        self._access = Access()

    async def close(self) -> None:
        """Finish pending writes (detected formats), then stop."""
        self._closed = True
        for task in self._tasks.tasks:
            await asyncio.wait({task})
        await self._tasks.close()

    def on_change(self, callback: ChangeCallback) -> None:
        """Call ``callback()`` whenever what :meth:`local_list` returns may have changed."""
        self._callbacks.append(callback)

    def _changed(self) -> None:
        self._groups = None
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:
                log.exception("list change callback %r failed", callback)

    def _configured_format(self, charger_id: str) -> IdTagFormat:
        return self._configured.get(charger_id, IdTagFormat.AUTO)

    def use_formats(self, formats: Mapping[str, IdTagFormat]) -> None:
        """A reloaded configuration: the chargers whose idTag format it sets."""
        self._configured = dict(formats)

    def charger_format(self, charger_id: str) -> IdTagFormat:
        """The charger's configured idTag format, else the detected one, else ``auto``."""
        configured = self._configured_format(charger_id)
        if configured is not IdTagFormat.AUTO:
            return configured
        detected = self._detected.get(charger_id)
        return IdTagFormat.AUTO if detected is None else detected.fmt

    def detected_format(self, charger_id: str) -> DetectedFormat | None:
        """The format detected for a charger configured as ``auto`` (for the installer)."""
        return self._detected.get(charger_id)

    @staticmethod
    def _lookup(index: CardIndex, id_tag: str, fmt: IdTagFormat, auto: bool) -> CardLookup:
        found = index.lookup(id_tag, fmt)
        if auto and fmt is not IdTagFormat.AUTO and not found.matches:
            found = index.lookup(id_tag, IdTagFormat.AUTO)  # the detection may be wrong
        return found
