"""Who may charge when the gateway has to decide: the card authority of the site.

While the cloud answers, it decides (the proxy relays Authorize and caches the answer through
:meth:`Authorizer.learn`). When it cannot (offline, too slow, or no cloud at all) the proxy calls
:meth:`Authorizer.decide`, which goes through the layers in this order and stops at the first
that knows the card:

1. the charger's free-charging tag (a charger set to free vend sends a fixed idTag);
2. the installer's cards (:class:`~edgegw.auth.locallist.Card`): the site's own authority;
3. the mirror of the cloud's local list (``SendLocalList``);
4. the authorisation cache (what the cloud last said about that idTag);
5. the site policy for unknown cards (``auth.unknown_cards``: reject or accept).

A card a list knows as Blocked, Expired or Invalid, or past its expiry, is refused whatever the
policy (OCPP 1.6 §3.5.4 says the same of unknown-offline authorisation), and so is an installer
card limited to other chargers. A random UID (4 bytes starting with ``08``) is refused before
the cache and the policy: it changes on every tap. A presented idTag that two cards explain
equally well (see :class:`~edgegw.auth.idtags.CardIndex`) is refused with both named: guessing
could let the wrong card in.

Speed: everything is in memory, indexed by every variant a charger may write a card in, so a
decision is a few dict probes (p99 well under a millisecond with 100,000 cards; see
``tests/bench/authorize.py``). ``decide`` is synchronous and does no I/O; the one thing it
learns, a charger's idTag format when that is ``auto``, is written by an owned task.

The gateway owns every charger's own local list (:mod:`edgegw.auth.listpush`): it answers the
cloud's ``SendLocalList`` and ``GetLocalListVersion`` itself, and :meth:`Authorizer.local_list`
says what each charger's list should hold. :meth:`Authorizer.on_change` tells the pusher when
that changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from edgegw.auth.access import Access
from edgegw.auth.cache import DAY, AuthCache, CacheEntry, cache_key
from edgegw.auth.idtags import CardId, CardIndex, CardLookup, IdTagFormat, parse_card_id
from edgegw.auth.locallist import (
    AuthStatus,
    Card,
    CloudEntry,
    CloudList,
    DuplicateCardError,
    IdTagInfo,
    ListEntry,
    ListSource,
    ListUpdate,
    UnknownCardError,
    cards_to_csv,
    format_datetime,
    normal_card_id,
    parse_cards_csv,
)
from edgegw.config import AuthConfig
from edgegw.store.cards import CardStore, DetectedFormat
from edgegw.store.db import Database
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

_CONFIRMATIONS: Final = 3  # matches in a row that move a detected idTag format to another
_YIELD_EVERY: Final = 2000  # bulk index updates give the event loop a turn this often


class Layer(StrEnum):
    """Which layer of the decision order decided."""

    FREE_TAG = "free_tag"
    INSTALLER = "installer"
    CLOUD_LIST = "cloud_list"
    IDTAG = "idtag"
    """The idTag itself: a random UID."""
    CACHE = "cache"
    POLICY = "policy"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :meth:`Authorizer.decide`.

    ``id_tag_info`` is the OCPP ``idTagInfo`` to answer with. ``card`` is the canonical card
    the idTag resolved to (None when no list knows it) and ``fmt`` the idTag format that matched
    (None for a token or no match).
    """

    id_tag_info: dict[str, Any]
    layer: Layer
    reason: str
    card: CardId | None = None
    fmt: IdTagFormat | None = None

    @property
    def status(self) -> AuthStatus:
        return AuthStatus(self.id_tag_info["status"])

    @property
    def accepted(self) -> bool:
        return self.status is AuthStatus.ACCEPTED


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :meth:`Authorizer.import_csv` changed."""

    added: int
    updated: int
    unchanged: int
    removed: int


ChangeCallback = Callable[[], None]


class Authorizer:
    """The site's card authority; create with :meth:`open`, end with :meth:`close`.

    ``formats`` maps charger ids to their configured idTag format (missing: ``auto``).
    Mutations (cards, cloud list, cache) are serialised and written to the store before they
    take effect in memory, so memory never runs ahead of the disk.
    """

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

    @classmethod
    async def open(
        cls,
        db: Database,
        config: AuthConfig,
        *,
        formats: Mapping[str, IdTagFormat] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Authorizer:
        """Load cards, the cloud list, the cache and detected formats from the database."""
        store = CardStore(db, clock=clock)
        self = cls(store, config, formats=formats or {}, clock=clock)
        started = time.perf_counter()
        for card in await store.load_cards():
            self._cards[card.key] = card
            self._installer.add(card.id)
        version, entries = await store.load_cloud_list()
        kept = [e for e in entries if not e.card.is_random_uid]
        self._cloud = CloudList(kept, version)
        for entry in kept:
            self._cloud_index.add(entry.card)
        evicted = self._cache.load(await store.load_cache(), clock())
        await store.cache_delete(evicted)
        self._detected = await store.detected_formats()
        self._access = await store.load_access()
        log.info(
            "card authority ready in %.2f s: %d installer card(s), cloud list v%d with %d "
            "entries, %d cached answer(s)",
            time.perf_counter() - started,
            len(self._cards),
            self._cloud.version,
            len(self._cloud),
            len(self._cache),
        )
        return self

    async def close(self) -> None:
        """Finish pending writes (detected formats), then stop."""
        self._closed = True
        for task in self._tasks.tasks:
            await asyncio.wait({task})
        await self._tasks.close()

    # ------------------------------------------------------------ deciding

    def decide(
        self,
        charger_id: str,
        id_tag: str,
        *,
        fmt: IdTagFormat,
        free_tag: str | None = None,
        now: float | None = None,
    ) -> Decision:
        """Decide locally whether ``id_tag`` presented at ``charger_id`` may charge.

        ``fmt`` is how that charger writes card ids (``auto`` tries every format), normally
        :meth:`charger_format`. For a charger *configured* as ``auto`` the format that matched
        is recorded, and a tag that does not match in the detected format is looked up in every
        format too, so a wrong or outdated detection never locks a card out.
        ``free_tag`` is the charger's free-charging tag, if it has one.
        """
        t = self._clock() if now is None else now
        if free_tag is not None and id_tag.strip().upper() == free_tag.strip().upper():
            return Decision(
                {"status": "Accepted"}, Layer.FREE_TAG, f"free-charging tag of {charger_id}"
            )

        auto = self._configured_format(charger_id) is IdTagFormat.AUTO
        found = self._lookup(self._installer, id_tag, fmt, auto)
        if found.card is not None:
            card = self._cards.get(found.card.key)
            if card is not None:
                self._detect(charger_id, found, t)
                return self._card_decision(card, charger_id, found, t)
        elif found.matches:
            return _ambiguous(found, Layer.INSTALLER, charger_id)

        listed = self._lookup(self._cloud_index, id_tag, fmt, auto)
        if listed.card is not None:
            entry = self._cloud.get(listed.card.key)
            if entry is not None:
                self._detect(charger_id, listed, t)
                return _cloud_decision(entry, listed, t)
        elif listed.matches:
            return _ambiguous(listed, Layer.CLOUD_LIST, charger_id)

        if found.random_uid:
            return Decision(
                {"status": "Invalid"},
                Layer.IDTAG,
                f"{id_tag!r} is a random UID (4 bytes starting with 08): the card shows a new "
                "UID on every tap, so it cannot be recognised",
            )

        cached = self._cache.get(id_tag, t)
        if cached is not None:
            return _cache_decision(cached, id_tag, t)

        unknown = f"{id_tag!r} is on no list and the cache has no recent cloud answer for it"
        if self._config.unknown_cards == "accept":
            return Decision(
                {"status": "Accepted"},
                Layer.POLICY,
                f"{unknown}; the site accepts unknown cards (auth.unknown_cards = accept)",
            )
        return Decision(
            {"status": "Invalid"},
            Layer.POLICY,
            f"{unknown}; the site refuses unknown cards (auth.unknown_cards = reject)",
        )

    def site_refusal(
        self,
        charger_id: str,
        id_tag: str,
        *,
        any_format: bool = False,
        now: float | None = None,
    ) -> Decision | None:
        """The site's own refusal of ``id_tag`` at ``charger_id``, or None if it has none.

        Only the installer's cards count: the site's own records. A card found there that is
        Blocked, Expired, Invalid, past its expiry or not allowed on ``charger_id`` is refused;
        an accepted card, a card the site does not know and an idTag that two cards explain
        are not (the cloud's answer stands). ``any_format`` reads the idTag in every format
        (a cloud's RemoteStartTransaction writes it its own way), else in the charger's.
        Memory only, no I/O, nothing learnt: safe on the relay path.
        """
        decision = self.site_decision(charger_id, id_tag, any_format=any_format, now=now)
        return None if decision is None or decision.accepted else decision

    def site_decision(
        self,
        charger_id: str,
        id_tag: str,
        *,
        any_format: bool = False,
        now: float | None = None,
    ) -> Decision | None:
        """The site's own word on ``id_tag`` at ``charger_id`` (accepted or not), or None when
        no installer card is that idTag. An acceptance through a share (or of a card with an
        expiry) has its end in ``expiryDate``. Memory only, like :meth:`site_refusal`."""
        hit = self._site_lookup(charger_id, id_tag, any_format)
        if hit is None:
            return None
        card, found = hit
        return self._card_decision(card, charger_id, found, self._clock() if now is None else now)

    def site_card(self, charger_id: str, id_tag: str) -> Card | None:
        """The installer card ``id_tag`` is at ``charger_id`` (None: none, or two). Memory only."""
        hit = self._site_lookup(charger_id, id_tag, False)
        return None if hit is None else hit[0]

    def _site_lookup(
        self, charger_id: str, id_tag: str, any_format: bool
    ) -> tuple[Card, CardLookup] | None:
        if not self._cards:
            return None
        if any_format:
            found = self._installer.lookup(id_tag, IdTagFormat.AUTO)
        else:
            auto = self._configured_format(charger_id) is IdTagFormat.AUTO
            found = self._lookup(self._installer, id_tag, self.charger_format(charger_id), auto)
        card = None if found.card is None else self._cards.get(found.card.key)
        return None if card is None else (card, found)

    def _card_decision(
        self, card: Card, charger_id: str, found: CardLookup, now: float
    ) -> Decision:
        who = f"installer card {card.describe()}{_how(found)}"
        if card.status is not AuthStatus.ACCEPTED:
            return Decision(
                {"status": card.status.value},
                Layer.INSTALLER,
                f"{who} is {card.status.value}",
                card.id,
                found.fmt,
            )
        if card.expiry is not None and card.expiry.timestamp() <= now:
            return Decision(
                {"status": "Expired"},
                Layer.INSTALLER,
                f"{who} expired at {format_datetime(card.expiry)}",
                card.id,
                found.fmt,
            )
        if card.chargers is None and self._access.empty:
            return Decision(
                card.id_tag_info().to_ocpp(),
                Layer.INSTALLER,
                f"{who} is Accepted",
                card.id,
                found.fmt,
            )
        verdict = self._access.verdict(card.key, card.chargers, charger_id, now)
        if not verdict.allowed:
            return Decision(
                {"status": "Expired" if verdict.share_ended else "Invalid"},
                Layer.INSTALLER,
                f"{who} {verdict.reason}",
                card.id,
                found.fmt,
            )
        info = card.id_tag_info()
        if verdict.until is not None:  # allowed here through a share: until it ends
            end = datetime.fromtimestamp(verdict.until, UTC)
            info = IdTagInfo(info.status, min(end, info.expiry or end), info.parent_id)
        accepted = f"{who} is Accepted" + (f" ({verdict.reason})" if verdict.reason else "")
        return Decision(info.to_ocpp(), Layer.INSTALLER, accepted, card.id, found.fmt)

    # ------------------------------------------------------------ idTag formats

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

    def _detect(self, charger_id: str, found: CardLookup, now: float) -> None:
        """Learn how an ``auto`` charger writes cards from a match that says so for sure.

        The first detection is taken at once. Switching to another format takes
        :data:`_CONFIRMATIONS` such matches in a row: a charger echoes a remote start's idTag
        verbatim (usually canonical hex), which says nothing about how it reads cards.
        """
        fmt = found.fmt
        if (
            fmt is None
            or found.ambiguous
            or self._configured_format(charger_id) is not IdTagFormat.AUTO
        ):
            return
        if not any(m.fmt is fmt and m.lossless for m in found.matches if m.card == found.card):
            return  # a truncated match pins a prefix, not the charger's format
        previous = self._detected.get(charger_id)
        if previous is not None:
            if previous.fmt is fmt:
                self._candidates.pop(charger_id, None)
                return
            seen_fmt, seen = self._candidates.get(charger_id, (fmt, 0))
            seen = seen + 1 if seen_fmt is fmt else 1
            if seen < _CONFIRMATIONS:
                self._candidates[charger_id] = (fmt, seen)
                return
        self._candidates.pop(charger_id, None)
        self._detected[charger_id] = DetectedFormat(fmt, now)
        log.info(
            "%s reports card ids as %s (card %s presented as %r)%s",
            charger_id,
            fmt.value,
            found.card,
            found.presented,
            "" if previous is None else f"; it was {previous.fmt.value} before",
        )
        if not self._closed:  # a decision during shutdown is still made, just not recorded
            self._tasks.spawn(
                self._store.set_detected_format(charger_id, fmt, now), f"format:{charger_id}"
            )
        self._changed()

    # ------------------------------------------------------------ what the cloud says

    async def learn(
        self,
        id_tag: str,
        id_tag_info: Mapping[str, Any],
        *,
        charger_id: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Cache the cloud's ``idTagInfo`` for ``id_tag`` (from Authorize, Start- or
        StopTransaction). Returns whether it was cached: tags on a local list never are, and
        ``charger_id`` (when given) says which format to read the tag in for that check."""
        try:
            info = IdTagInfo.from_ocpp(id_tag_info)
        except ValueError as exc:
            log.warning("cloud answer for %r not cached: %s", id_tag, exc)
            return False
        t = self._clock() if now is None else now
        fmt = IdTagFormat.AUTO if charger_id is None else self._configured_format(charger_id)
        hit = self._installer.lookup(id_tag, fmt)
        if hit.card is None:
            hit = self._cloud_index.lookup(id_tag, fmt)
        if hit.card is not None:
            if charger_id is not None:
                self._detect(charger_id, hit, t)
            self._note_conflict(hit.card, info, id_tag)
            if self._cache.discard(id_tag):
                await self._store.cache_delete([cache_key(id_tag)])
            return False
        if hit.random_uid:
            return False
        learned = self._cache.learn(id_tag, info, t)
        if learned is None:
            return False
        await self._store.cache_put(learned.entry, learned.evicted)
        return True

    def _note_conflict(self, card: CardId, info: IdTagInfo, id_tag: str) -> None:
        listed: IdTagInfo | None = None
        if (mine := self._cards.get(card.key)) is not None:
            listed = mine.id_tag_info()
        elif (entry := self._cloud.get(card.key)) is not None:
            listed = entry.info
        if listed is not None and listed.status.valid != info.status.valid:
            log.info(
                "the cloud answered %s for %r but the local list has %s %s; the list wins "
                "when the gateway decides",
                info.status.value,
                id_tag,
                card,
                listed.status.value,
            )

    def cached(self, id_tag: str, now: float | None = None) -> CacheEntry | None:
        """The cache entry the gateway would use for ``id_tag`` (for the CLI and tests)."""
        return self._cache.get(id_tag, self._clock() if now is None else now)

    async def send_local_list(self, payload: Mapping[str, Any]) -> dict[str, str]:
        """Answer the cloud's ``SendLocalList``: mirror it, then keep the chargers in step."""
        async with self._lock:
            update = self._cloud.plan(payload)
            if update.status != "Accepted":
                log.warning("cloud SendLocalList answered %s: %s", update.status, update.reason)
                return update.answer()
            for tag in update.skipped:
                log.warning(
                    "cloud list entry %r skipped: a random UID (4 bytes starting with 08) "
                    "changes on every tap and can never match",
                    tag,
                )
            if update.changed or update.version != self._cloud.version:
                await self._store.apply_cloud_update(update)
            await self._commit_cloud(update)
        log.info(
            "cloud list %s v%d: %s (%d entries)",
            "Full" if update.full else "Differential",
            update.version,
            "changed" if update.changed else "unchanged",
            len(self._cloud),
        )
        if update.changed:
            self._changed()
        return update.answer()

    async def _commit_cloud(self, update: ListUpdate) -> None:
        # Index and entries change so that a decide() in between sees, for every card, either
        # the old state or the new one: removals leave the index first, then the entries switch
        # at once, then additions enter the index.
        old = {e.key: e for e in self._cloud}
        if update.full:
            new_keys = {e.key for e in update.upserts}
            leaving = [e.card for k, e in old.items() if k not in new_keys]
            arriving = [e.card for e in update.upserts if e.key not in old]
        else:
            upserted = {e.key for e in update.upserts}
            leaving = [e.card for e in update.deletes if e.key not in upserted]
            arriving = [e.card for e in update.upserts if e.key not in old]
        await _bulk(self._cloud_index.discard, leaving)
        self._cloud.commit(update)
        await _bulk(self._cloud_index.add, arriving)

    def local_list_version(self) -> int:
        """Answer to the cloud's ``GetLocalListVersion``: the mirror's version."""
        return self._cloud.version

    def cloud_list(self) -> list[CloudEntry]:
        return list(self._cloud)

    # ------------------------------------------------------------ installer cards

    def cards(self) -> list[Card]:
        return sorted(self._cards.values(), key=lambda c: c.key)

    def card(self, card_id: CardId | str) -> Card | None:
        """The installer card ``card_id`` (a CardId, or text as an installer types it)."""
        if isinstance(card_id, str) and (hit := self._cards.get(card_id.strip().upper())):
            return hit
        return self._cards.get(_resolve(card_id).key)

    async def add_card(self, card: Card) -> Card:
        """Enrol a new card; :class:`DuplicateCardError` if it is already enrolled."""
        async with self._lock:
            if card.key in self._cards:
                raise DuplicateCardError(f"card {card.id.canonical} is already enrolled")
            now = self._clock()
            card = dataclasses.replace(card, created_at=now, updated_at=now)
            clashes = self._installer.clashes(card.id)
            await self._store.save_card(card)
            self._cards[card.key] = card
            self._installer.add(card.id)
        if clashes:
            log.warning(
                "card %s looks like other cards on some chargers: %s",
                card.id,
                "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in sorted(clashes.items())),
            )
        log.info("card %s enrolled (%s)", card.describe(), card.status.value)
        self._changed()
        return card

    async def update_card(self, card: Card) -> Card:
        """Replace an enrolled card's details; :class:`UnknownCardError` if there is none."""
        async with self._lock:
            old = self._cards.get(card.key)
            if old is None:
                raise UnknownCardError(f"no enrolled card {card.id.canonical}")
            card = dataclasses.replace(card, created_at=old.created_at, updated_at=self._clock())
            await self._store.save_card(card)
            self._cards[card.key] = card
        log.info("card %s updated (%s)", card.describe(), card.status.value)
        self._changed()
        return card

    async def block(self, card_id: CardId | str) -> Card:
        return await self._set_status(card_id, AuthStatus.BLOCKED)

    async def unblock(self, card_id: CardId | str) -> Card:
        return await self._set_status(card_id, AuthStatus.ACCEPTED)

    async def _set_status(self, card_id: CardId | str, status: AuthStatus) -> Card:
        card = self.card(card_id)
        if card is None:
            raise UnknownCardError(f"no enrolled card {card_id}")
        if card.status is status:
            return card
        return await self.update_card(dataclasses.replace(card, status=status))

    async def remove(self, card_id: CardId | str) -> Card:
        """Forget an enrolled card; :class:`UnknownCardError` if there is none."""
        async with self._lock:
            card = self.card(card_id)
            if card is None:
                raise UnknownCardError(f"no enrolled card {card_id}")
            await self._store.delete_card(card.id)
            self._installer.discard(card.id)
            del self._cards[card.key]
            access = self._access.without_card(card.key)
            if access is not self._access:
                await self._store.save_access(access)
                self._access = access
        log.info("card %s removed", card.describe())
        self._changed()
        return card

    async def import_csv(self, text: str, *, replace: bool = False) -> ImportResult:
        """Add or update the cards of a CSV file (:data:`~edgegw.auth.locallist.CSV_COLUMNS`);
        with ``replace``, cards not in the file are removed. All or nothing: a bad row raises
        :class:`~edgegw.auth.locallist.CsvImportError` naming every bad line."""
        now = self._clock()
        cards = parse_cards_csv(text, now=now)
        async with self._lock:
            added: list[Card] = []
            updated: list[Card] = []
            unchanged: list[Card] = []
            for card in cards:
                old = self._cards.get(card.key)
                if old is None:
                    added.append(card)
                elif old == card:
                    unchanged.append(old)
                else:
                    updated.append(dataclasses.replace(card, created_at=old.created_at))
            keys = {c.key for c in cards}
            removed = [c for k, c in self._cards.items() if k not in keys] if replace else []
            written = [*added, *updated]
            await self._store.save_cards(
                [*written, *unchanged] if replace else written, replace=replace
            )
            for card in removed:
                self._installer.discard(card.id)
                del self._cards[card.key]
            for card in written:
                self._cards[card.key] = card
            await _bulk(self._installer.add, [c.id for c in added])
        result = ImportResult(len(added), len(updated), len(unchanged), len(removed))
        log.info(
            "card import: %d added, %d updated, %d unchanged, %d removed",
            result.added,
            result.updated,
            result.unchanged,
            result.removed,
        )
        if added or updated or removed:
            self._changed()
        return result

    def export_csv(self) -> str:
        """All installer cards as CSV, in the form :meth:`import_csv` reads."""
        return cards_to_csv(self._cards.values())

    # ------------------------------------------------------------ the chargers' own lists

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

    def local_list(self, charger_id: str) -> list[ListEntry]:
        """What ``charger_id``'s own local list should hold, most important first.

        Valid cards first (the charger's own private cards, then the installer's, then the
        cloud's), then Blocked ones (so a lost card is refused even by a charger that cannot
        reach the gateway), then the other refused ones. Installer cards limited to other
        chargers are left out; an installer card hides the cloud's entry for the same card.
        A charger whose list is shorter keeps the head of this list.
        """
        groups = self._groups
        if groups is None:
            groups = self._groups = _Groups.build(
                self._cards.values(), self._cloud, self._clock(), self._access
            )
        own = groups.restricted.get(charger_id)
        if own is None:
            return [*groups.shared[0], *groups.shared[1], *groups.shared[2]]
        return [*own[0], *groups.shared[0], *own[1], *groups.shared[1], *own[2], *groups.shared[2]]

    def _configured_format(self, charger_id: str) -> IdTagFormat:
        return self._configured.get(charger_id, IdTagFormat.AUTO)

    # ------------------------------------------------------------ groups and shares

    @property
    def access(self) -> Access:
        """The charger groups, card groups and shares (see :mod:`edgegw.auth.access`)."""
        return self._access

    async def change_access(self, change: Callable[[Access], Access]) -> Access:
        """Apply ``change`` to the groups and shares (it raises AccessError to refuse), write
        the result, then decide with it. Shares ended a month ago are forgotten on the way."""
        async with self._lock:
            access = change(self._access).without_ended_shares(self._clock())
            if access == self._access:
                return access
            await self._store.save_access(access)
            self._access = access
        self._changed()
        return access


# ------------------------------------------------------------------------ helpers


@dataclass(slots=True)
class _Groups:
    """The effective list split by rank: [valid, blocked, other refused] each."""

    shared: tuple[list[ListEntry], list[ListEntry], list[ListEntry]]
    restricted: dict[str, tuple[list[ListEntry], list[ListEntry], list[ListEntry]]]

    @classmethod
    def build(cls, cards: Iterable[Card], cloud: CloudList, now: float, access: Access) -> _Groups:
        shared: tuple[list[ListEntry], list[ListEntry], list[ListEntry]] = ([], [], [])
        restricted: dict[str, tuple[list[ListEntry], list[ListEntry], list[ListEntry]]] = {}
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
        return cls(shared, restricted)


def _rank(info: IdTagInfo, now: float) -> int:
    if info.status.valid and not info.expired(now):
        return 0
    return 1 if info.status is AuthStatus.BLOCKED else 2


def _resolve(card_id: CardId | str) -> CardId:
    if isinstance(card_id, CardId):
        return normal_card_id(card_id)
    return normal_card_id(parse_card_id(card_id))


def _how(found: CardLookup) -> str:
    if found.fmt is None or found.fmt in (IdTagFormat.HEX, IdTagFormat.HEX_LOWER):
        return ""
    return f" (presented as {found.presented!r}, {found.fmt.value})"


def _ambiguous(found: CardLookup, layer: Layer, charger_id: str) -> Decision:
    return Decision(
        {"status": "Invalid"},
        layer,
        f"{found.describe()}; the cards cannot be told apart, so none is accepted. Set "
        f"{charger_id}'s idtag_format so that it reads one card",
    )


def _cloud_decision(entry: CloudEntry, found: CardLookup, now: float) -> Decision:
    info = entry.info
    who = f"cloud list entry {entry.id_tag}{_how(found)}"
    if not info.status.valid:
        return Decision(
            {"status": info.status.value},
            Layer.CLOUD_LIST,
            f"{who} is {info.status.value}",
            entry.card,
            found.fmt,
        )
    if info.expiry is not None and info.expired(now):
        return Decision(
            {"status": "Expired"},
            Layer.CLOUD_LIST,
            f"{who} expired at {format_datetime(info.expiry)}",
            entry.card,
            found.fmt,
        )
    accepted = IdTagInfo(AuthStatus.ACCEPTED, info.expiry, info.parent_id)
    return Decision(
        accepted.to_ocpp(), Layer.CLOUD_LIST, f"{who} is Accepted", entry.card, found.fmt
    )


def _cache_decision(entry: CacheEntry, id_tag: str, now: float) -> Decision:
    info = entry.info
    said = f"the cloud answered {info.status.value} for {id_tag!r} at {_iso(entry.learned_at)}"
    if not info.status.valid:
        return Decision({"status": info.status.value}, Layer.CACHE, said)
    if info.expiry is not None and info.expired(now):
        return Decision(
            {"status": "Expired"},
            Layer.CACHE,
            f"{said}, valid until {format_datetime(info.expiry)}",
        )
    return Decision(info.to_ocpp(), Layer.CACHE, said)


def _iso(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC))


async def _bulk(apply: Callable[[CardId], bool], cards: list[CardId]) -> None:
    for start in range(0, len(cards), _YIELD_EVERY):
        for card in cards[start : start + _YIELD_EVERY]:
            apply(card)
        if start + _YIELD_EVERY < len(cards):
            await asyncio.sleep(0)
