"""The installer's cards: added, changed, blocked, removed, imported and exported as CSV, and who
may use them where (access). Written to the store before they take effect in memory.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from edgegw.auth.access import Access
from edgegw.auth.authstate import ImportResult, _bulk
from edgegw.auth.cloudanswers import _CloudAnswers
from edgegw.auth.decision import _resolve
from edgegw.auth.idtags import CardId
from edgegw.auth.locallist import (
    AuthStatus,
    Card,
    DuplicateCardError,
    UnknownCardError,
    cards_to_csv,
    parse_cards_csv,
)

log = logging.getLogger("edgegw.auth.authorizer")


class _InstallerCards(_CloudAnswers):
    """The site's own cards and their access."""

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
            access = self._access
            for card in removed:
                self._installer.discard(card.id)
                del self._cards[card.key]
                access = access.without_card(card.key)  # it leaves its groups, its shares go
            if access is not self._access:
                await self._store.save_access(access)
                self._access = access
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
        return cards_to_csv(self._cards.values(), self._access)

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
