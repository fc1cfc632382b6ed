"""What the card authority takes from the cloud: its Authorize answers (cached, and a charger's
idTag format detected from them) and its ``SendLocalList``, mirrored.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from typing import Any

from edgegw.auth.authstate import _CONFIRMATIONS, _AuthorizerState, _bulk
from edgegw.auth.cache import CacheEntry, CacheKey, cache_key
from edgegw.auth.idtags import CardId, CardIndex, CardLookup, IdTagFormat
from edgegw.auth.locallist import CloudEntry, IdTagInfo, ListUpdate
from edgegw.store.cards import CardStore, DetectedFormat

log = logging.getLogger("edgegw.auth.authorizer")


class CardWrite:
    """A card-cache change still to be written to disk: ``await`` it (once) to write it."""

    __slots__ = ("_deleted", "_entry", "_store")

    def __init__(
        self,
        store: CardStore,
        entry: CacheEntry | None = None,
        deleted: tuple[CacheKey, ...] = (),
    ) -> None:
        self._store = store
        self._entry = entry
        self._deleted = deleted

    def __await__(self) -> Generator[Any, None, None]:
        return self._write().__await__()

    async def _write(self) -> None:
        if self._entry is None:
            await self._store.cache_delete(self._deleted)
        else:
            await self._store.cache_put(self._entry, self._deleted)


class _CloudAnswers(_AuthorizerState):
    """The cloud's answers and local list, learnt and mirrored."""

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

    async def learn(
        self,
        id_tag: str,
        id_tag_info: Mapping[str, Any],
        *,
        charger_id: str | None = None,
        now: float | None = None,
        literal: bool = False,
    ) -> bool:
        """Cache the cloud's ``idTagInfo`` for ``id_tag`` and write it to disk (see
        :meth:`learn_now`). Returns whether it was cached."""
        cached, write = self.learn_now(
            id_tag, id_tag_info, charger_id=charger_id, now=now, literal=literal
        )
        if write is not None:
            await write
        return cached

    def learn_now(
        self,
        id_tag: str,
        id_tag_info: Mapping[str, Any],
        *,
        charger_id: str | None = None,
        now: float | None = None,
        literal: bool = False,
    ) -> tuple[bool, CardWrite | None]:
        """Cache the cloud's ``idTagInfo`` for ``id_tag`` (from Authorize, Start- or
        StopTransaction) in memory at once, where every decision reads it, and return whether
        it was cached and the disk write still to do (None when there is nothing to write).

        Tags on a local list are never cached, and ``charger_id`` (when given) says which
        format to read the tag in for that check. The write may run later (the bookkeeper's
        queue), as long as the writes of one tag run in the order they were made.

        ``literal``: the answer is about a 2.x token that is no card UID (``KeyCode``,
        ``eMAID``, ``Central``...): it is looked up on the lists as such (its own text only,
        :meth:`~edgegw.auth.authorizer.Authorizer._literal_lookup`) and cached in the tokens' key
        space, so it never decides a card's idTag of the same text, nor the other way round."""
        try:
            info = IdTagInfo.from_ocpp(id_tag_info)
        except ValueError as exc:
            log.warning("cloud answer for %r not cached: %s", id_tag, exc)
            return False, None
        t = self._clock() if now is None else now
        if literal:
            hit = self._literal_lookup(self._installer, id_tag)
            if hit.card is None:
                hit = self._literal_lookup(self._cloud_index, id_tag)
        else:
            fmt = IdTagFormat.AUTO if charger_id is None else self._configured_format(charger_id)
            hit = self._installer.lookup(id_tag, fmt)
            if hit.card is None:
                hit = self._cloud_index.lookup(id_tag, fmt)
        if hit.card is not None:
            if charger_id is not None and not literal:
                self._detect(charger_id, hit, t)
            self._note_conflict(hit.card, info, id_tag)
            if self._cache.discard(id_tag, literal=literal):
                return False, CardWrite(self._store, deleted=(cache_key(id_tag, literal),))
            return False, None
        if hit.random_uid:
            return False, None
        learned = self._cache.learn(id_tag, info, t, literal=literal)
        if learned is None:
            return False, None
        if learned.unchanged:
            return True, None
        return True, CardWrite(self._store, learned.entry, learned.evicted)

    @staticmethod
    def _literal_lookup(index: CardIndex, token: str) -> CardLookup:
        """The card whose own text ``token`` is (stripped, case-insensitive), and only that:
        a UID card's match in a format (reversed, decimal, truncated...) is dropped. A 2.x
        token of the cloud's list (a ``LiteralToken``: KeyCode, eMAID...) matches only here."""
        found = index.lookup(token, IdTagFormat.AUTO, literal=True)
        key = token.strip().upper()
        matches = tuple(m for m in found.matches if m.canonical and m.card.key == key)
        card = matches[0].card if len({m.card for m in matches}) == 1 else None
        return CardLookup(
            presented=token,
            requested=IdTagFormat.AUTO,
            matches=matches,
            card=card,
            fmt=None,
            ambiguous=len({m.card for m in matches}) > 1,
            random_uid=False,
        )

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

    def cached(
        self, id_tag: str, now: float | None = None, *, literal: bool = False
    ) -> CacheEntry | None:
        """The cache entry the gateway would use for ``id_tag`` (``literal``: the 2.x token
        ``id_tag``), for the CLI and tests."""
        return self._cache.get(id_tag, self._clock() if now is None else now, literal=literal)

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
