"""Which installer card a charger's idTag is, for the session lists, exports and reports."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence

import aiosqlite

from edgegw.auth.access import Access
from edgegw.auth.chargerformats import configured_formats
from edgegw.auth.idtags import CardId, CardIndex, IdTagFormat, parse_card_id
from edgegw.auth.locallist import Card, normal_card_id
from edgegw.config import Config, TariffConfig
from edgegw.store.cards import CardStore
from edgegw.store.db import Database
from edgegw.store.session_model import owner_key
from edgegw.store.tariffs import Priced, Tariffs, price_session


class CardResolver:
    """Which installer card an idTag reported by a charger is, as the card authority sees it.

    ``charger_format`` gives a charger's configured, else detected, idTag format
    (:meth:`Authorizer.charger_format <edgegw.auth.authorizer.Authorizer.charger_format>`);
    ``configured`` the formats set in the configuration. Like the authority, a charger set to
    ``auto`` whose detected format does not match is looked up in every format.
    """

    def __init__(
        self,
        cards: Iterable[Card],
        charger_format: Callable[[str], IdTagFormat],
        configured: Mapping[str, IdTagFormat],
        *,
        access: Access | None = None,
        tariffs: Sequence[TariffConfig] = (),
    ) -> None:
        self.access = access or Access()
        self.tariffs = Tariffs.from_config(tariffs)  # TariffError: mixed currencies
        self._cards = {card.key: card for card in cards}
        self._index = CardIndex(card.id for card in self._cards.values())
        self._format = charger_format
        self._configured = dict(configured)
        self._memo: dict[tuple[str, str], Card | None] = {}
        self._owners: dict[str, str] | None = None  # owner_key -> an owner as written

    @classmethod
    async def load(cls, conn: aiosqlite.Connection, config: Config) -> CardResolver:
        """From the database alone (the daemon is stopped): cards and detected formats."""
        store = CardStore(Database(conn, config.store.path))
        cards = await store.load_cards()
        detected = await store.detected_formats()
        access = await store.load_access()
        configured = configured_formats(config)

        def charger_format(charger_id: str) -> IdTagFormat:
            fmt = configured.get(charger_id, IdTagFormat.AUTO)
            if fmt is IdTagFormat.AUTO and charger_id in detected:
                return detected[charger_id].fmt
            return fmt

        return cls(cards, charger_format, configured, access=access, tariffs=config.tariffs)

    def price(
        self, charger_id: str, card: Card | None, start: float, end: float, energy_wh: int
    ) -> Priced | None:
        """The tariff and the (unrounded) cost of a finished session, today; None without."""
        key = None if card is None else card.key
        return price_session(
            self.tariffs, self.access, charger_id, key, start=start, end=end, energy_wh=energy_wh
        )

    def format_of(self, charger_id: str) -> IdTagFormat:
        return self._format(charger_id)

    def _auto(self, charger_id: str) -> bool:
        return self._configured.get(charger_id, IdTagFormat.AUTO) is IdTagFormat.AUTO

    def resolve(self, charger_id: str, id_tag: str) -> Card | None:
        """The installer card behind ``id_tag`` at ``charger_id``; None if unknown or ambiguous."""
        memo_key = (charger_id, id_tag)
        if memo_key in self._memo:
            return self._memo[memo_key]
        fmt = self.format_of(charger_id)
        found = self._index.lookup(id_tag, fmt)
        if self._auto(charger_id) and fmt is not IdTagFormat.AUTO and not found.matches:
            found = self._index.lookup(id_tag, IdTagFormat.AUTO)  # the detection may be wrong
        card = None if found.card is None else self._cards.get(found.card.key)
        self._memo[memo_key] = card
        return card

    def check_owner(self, owner: str) -> None:
        """Refuse an owner no enrolled card has (with the closest names), else do nothing.

        Sessions are matched to owners through today's cards, so such an owner can match no
        session at all: an empty list would pass a typo off as "did not charge", and an empty
        export would make an empty bill.
        """
        if self._owners is None:
            self._owners = {}
            for card in sorted(self._cards.values(), key=lambda c: c.owner):
                if owner_key(card.owner):
                    self._owners.setdefault(owner_key(card.owner), card.owner.strip())
        wanted = owner_key(owner)
        if wanted in self._owners:
            return
        if not self._owners:
            raise ValueError(
                f"no enrolled card has the owner {owner!r}: no card has an owner yet "
                "(`edgegw cards update CARD --owner NAME` sets one)"
            )
        close = difflib.get_close_matches(wanted, self._owners, n=3, cutoff=0.6)
        hint = (
            "; did you mean " + " or ".join(repr(self._owners[k]) for k in close) + "?"
            if close
            else "; owners are matched whole (any case), as `edgegw cards list` shows them"
        )
        raise ValueError(f"no enrolled card has the owner {owner!r}{hint}")

    def card_id(self, text: str) -> CardId:
        """The card an installer typed (an enrolled card's id as stored, or any card id)."""
        hit = self._cards.get(text.strip().upper())
        if hit is not None:
            return hit.id
        return normal_card_id(parse_card_id(text))
