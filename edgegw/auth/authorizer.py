"""Who may charge when the gateway has to decide: the card authority of the site.

While the cloud answers, it decides (the proxy relays Authorize and caches the answer through
:meth:`Authorizer.learn`). When it cannot (offline, too slow, or no cloud at all) the proxy calls
:meth:`Authorizer.decide`, which goes through the layers in this order and stops at the first
that knows the card:

1. the charger's free-charging tag (a charger set to free vend sends a fixed idTag);
2. the installer's cards (:class:`~edgegw.auth.locallist.Card`): the site's own authority;
3. the mirror of the cloud's local list (``SendLocalList``);
4. the authorisation cache (what the cloud last said about that idTag, or about that 2.x
   token when ``literal``: the two kinds never answer for each other);
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

:class:`Authorizer` is cut into layers, each a base class in its own module adding behaviour,
not state: :mod:`~edgegw.auth.authstate` (the state, formats, change notifications),
:mod:`~edgegw.auth.cloudanswers` (the cloud's answers and list), :mod:`~edgegw.auth.installercards`
(the site's cards and access) and here the decisions; :mod:`~edgegw.auth.decision` holds what a
decision is. Every name is importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from edgegw.auth.authstate import ChangeCallback, ImportResult, _Groups
from edgegw.auth.cardindex import LiteralToken
from edgegw.auth.decision import Decision, Layer, _ambiguous, _cache_decision, _cloud_decision, _how
from edgegw.auth.idtags import CardLookup, IdTagFormat
from edgegw.auth.installercards import _InstallerCards
from edgegw.auth.locallist import AuthStatus, Card, CloudList, IdTagInfo, ListEntry, format_datetime
from edgegw.config import AuthConfig
from edgegw.store.cards import CardStore
from edgegw.store.db import Database

log = logging.getLogger(__name__)


class Authorizer(_InstallerCards):
    """The site's card authority; create with :meth:`open`, end with :meth:`close`.

    ``formats`` maps charger ids to their configured idTag format (missing: ``auto``).
    Mutations (cards, cloud list, cache) are serialised and written to the store before they
    take effect in memory, so memory never runs ahead of the disk.
    """

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

    # ------------------------------------------------------------ deciding

    def decide(
        self,
        charger_id: str,
        id_tag: str,
        *,
        fmt: IdTagFormat,
        free_tag: str | None = None,
        now: float | None = None,
        literal: bool = False,
    ) -> Decision:
        """Decide locally whether ``id_tag`` presented at ``charger_id`` may charge.

        ``fmt`` is how that charger writes card ids (``auto`` tries every format), normally
        :meth:`charger_format`. For a charger *configured* as ``auto`` the format that matched
        is recorded, and a tag that does not match in the detected format is looked up in every
        format too, so a wrong or outdated detection never locks a card out.
        ``free_tag`` is the charger's free-charging tag, if it has one.

        ``literal``: the tag is a token, not a card UID (an OCPP 2.0.1 ``Central``, ``eMAID``,
        ``KeyCode``... ``IdTokenType``): it matches a card only by the card's own text
        (case-insensitively, :meth:`_literal_lookup`), never a UID's rendering in some idTag
        format; it teaches no format and is never taken for a random UID.
        """
        t = self._clock() if now is None else now
        if free_tag is not None and id_tag.strip().upper() == free_tag.strip().upper():
            return Decision(
                {"status": "Accepted"}, Layer.FREE_TAG, f"free-charging tag of {charger_id}"
            )

        auto = self._configured_format(charger_id) is IdTagFormat.AUTO
        if literal:
            found = self._literal_lookup(self._installer, id_tag)
        else:
            found = self._lookup(self._installer, id_tag, fmt, auto)
        if found.card is not None:
            card = self._cards.get(found.card.key)
            if card is not None:
                if not literal:
                    self._detect(charger_id, found, t)
                return self._card_decision(card, charger_id, found, t)
        elif found.matches:
            return _ambiguous(found, Layer.INSTALLER, charger_id)

        if literal:
            listed = self._literal_lookup(self._cloud_index, id_tag)
        else:
            listed = self._lookup(self._cloud_index, id_tag, fmt, auto)
        if listed.card is not None:
            entry = self._cloud.get(listed.card.key)
            if entry is not None:
                if not literal:
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

        cached = self._cache.get(id_tag, t, literal=literal)
        if cached is not None and (literal or not self._listed_token(id_tag)):
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

    def _listed_token(self, id_tag: str) -> bool:
        """``id_tag`` is the text of a 2.x token (KeyCode...) on the cloud's list: a card
        reader's idTag of that text is no answer the cloud gave about the token."""
        entry = self._cloud.get(id_tag.strip().upper())
        return entry is not None and isinstance(entry.card, LiteralToken)

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

    # ------------------------------------------------------------ the chargers' own lists

    def local_list(self, charger_id: str) -> list[ListEntry]:
        """What ``charger_id``'s own local list should hold, most important first.

        Valid cards first (the charger's own private cards, then the installer's, then the
        cloud's), then Blocked ones (so a lost card is refused even by a charger that cannot
        reach the gateway), then the other refused ones, last the installer cards limited to
        other chargers (listed Invalid here, Expired where a share of it ended, as the gateway
        answers: a charger deciding from its own list refuses them).
        An installer card hides the cloud's entry for the same card. A charger whose list is
        shorter keeps the head of this list.
        """
        groups = self._groups
        if groups is None:
            groups = self._groups = _Groups.build(
                self._cards.values(), self._cloud, self._clock(), self._access
            )
        not_here = [
            expired if charger_id in ended else entry
            for entry, places, expired, ended in groups.elsewhere
            if charger_id not in places
        ]
        own = groups.restricted.get(charger_id)
        if own is None:
            return [*groups.shared[0], *groups.shared[1], *groups.shared[2], *not_here]
        return [
            *own[0],
            *groups.shared[0],
            *own[1],
            *groups.shared[1],
            *own[2],
            *groups.shared[2],
            *not_here,
        ]


__all__ = [
    "Authorizer",
    "ChangeCallback",
    "Decision",
    "ImportResult",
    "Layer",
]
