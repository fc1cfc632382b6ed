"""Every variant of every known card mapped back to the card, with the ambiguity policy of
:mod:`edgegw.auth.idtags`: a lookup resolves to a card only when the evidence points at
exactly one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from edgegw.auth.cardid import (
    _CANONICAL_FORMATS,
    _DECIMAL_FORMATS,
    _RANK,
    FORMATS,
    CardId,
    CardIdError,
    IdTagFormat,
    RandomUidError,
)
from edgegw.auth.cardparse import _DIGITS, _SEPARATED_HEX, _SEPARATORS, parse_card_id
from edgegw.auth.cardrender import _key_renderers, _render_uid, is_lossless


@dataclass(frozen=True, slots=True, repr=False)
class LiteralToken(CardId):
    """A token whose sender said it is no card UID: an OCPP 2.x ``IdTokenType`` of type
    ``kind`` (``KeyCode``, ``eMAID``, ``Central``...) from the cloud's list. Its text is matched
    only by a literal lookup (a 2.x token presented as such), never read as a UID or matched
    by an idTag a card reader produced, however hex-shaped it is (a keypad code ``12345678``
    is not the card with UID 12345678). Build one with :meth:`of`."""

    kind: str = field(default="Central", kw_only=True)

    @classmethod
    def of(cls, text: str, kind: str) -> LiteralToken:
        return cls(token=text, kind=kind)

    def __repr__(self) -> str:
        return f"LiteralToken({self.canonical!r}, {self.kind!r})"


@dataclass(frozen=True, slots=True)
class CardMatch:
    """One way a presented idTag matches a known card."""

    card: CardId
    fmt: IdTagFormat | None
    """The format under which the card renders as the presented tag. It is None for an opaque
    token, which matches verbatim and says nothing about the charger's format."""
    canonical: bool
    """The presented tag is the card's canonical form (case-insensitively)."""
    lossless: bool
    """The format keeps the whole UID. A lossy match pins only a prefix."""


@dataclass(frozen=True, slots=True)
class CardLookup:
    """The outcome of :meth:`CardIndex.lookup`.

    ``card`` is the card the tag resolves to, or None when nothing matched or when the best
    matches name different cards. ``ambiguous`` is set whenever more than one card matched,
    even if one of them was chosen. ``matches`` lists every match, best first.
    """

    presented: str
    requested: IdTagFormat
    matches: tuple[CardMatch, ...]
    card: CardId | None
    fmt: IdTagFormat | None
    """Format of the chosen match (None for a token or when unresolved)."""
    ambiguous: bool
    random_uid: bool
    """Nothing matched and the tag reads as a random UID: the card cannot be enrolled."""

    @property
    def found(self) -> bool:
        return self.card is not None

    @property
    def cards(self) -> tuple[CardId, ...]:
        """Distinct matched cards, best first."""
        return tuple(dict.fromkeys(m.card for m in self.matches))

    def describe(self) -> str:
        """One line for logs and the CLI."""

        def one(m: CardMatch) -> str:
            how = "verbatim" if m.fmt is None else f"as {m.fmt.value}"
            return f"{m.card.canonical} ({how})"

        if not self.matches:
            return f"{self.presented!r}: unknown" + (" (random UID)" if self.random_uid else "")
        if self.card is None:
            listed = ", ".join(one(m) for m in self.matches)
            return f"{self.presented!r}: ambiguous, unresolved: {listed}"
        chosen = next(m for m in self.matches if m.card == self.card)
        text = f"{self.presented!r}: {one(chosen)}"
        if self.ambiguous:
            others = ", ".join(one(m) for m in self.matches if m.card != self.card)
            text += f"; ambiguous, also {others}"
        return text


class CardIndex:
    """Every variant of every known card, for O(1) lookup of presented idTags.

    ``formats`` limits the variants indexed (default: all). A site whose chargers all use
    known formats can index just those to save memory. ``HEX`` (and so ``HEX_LOWER``) is
    always indexed. Random UIDs are refused: they cannot authorise.

    Not thread-safe; meant for one event loop.
    """

    __slots__ = ("_by_key", "_cards", "_formats", "_key_formats", "_renderers")

    def __init__(
        self, cards: Iterable[CardId] = (), *, formats: Iterable[IdTagFormat] | None = None
    ) -> None:
        chosen = set(FORMATS if formats is None else formats)
        if IdTagFormat.AUTO in chosen:
            raise ValueError("AUTO is not a format to index; leave formats=None for all")
        chosen |= _CANONICAL_FORMATS
        self._formats = tuple(f for f in FORMATS if f in chosen)
        self._key_formats = tuple(f for f in self._formats if f not in _CANONICAL_FORMATS)
        renderers = _key_renderers()
        self._renderers = tuple(renderers[f] for f in self._key_formats)
        self._by_key: dict[str, CardId | tuple[CardId, ...]] = {}
        self._cards: set[CardId] = set()
        for card in cards:
            self.add(card)

    @property
    def formats(self) -> tuple[IdTagFormat, ...]:
        return self._formats

    def __len__(self) -> int:
        return len(self._cards)

    def __iter__(self) -> Iterator[CardId]:
        return iter(self._cards)

    def __contains__(self, card: object) -> bool:
        return card in self._cards

    def _keys(self, card: CardId) -> set[str]:
        key = card.key
        uid = card.uid
        if uid is None:
            return {key}
        keys = {key}
        for render_key in self._renderers:
            text = render_key(uid, key)
            if text is not None:
                keys.add(text)
        return keys

    def add(self, card: CardId) -> bool:
        """Index ``card``. Returns False if it was already known."""
        if card.is_random_uid:
            raise RandomUidError(
                f"{card.canonical} is a random UID (4 bytes starting with 08) and cannot "
                "authorise: the card shows a different UID on every tap"
            )
        if card in self._cards:
            return False
        self._cards.add(card)
        by_key = self._by_key
        for key in self._keys(card):
            held = by_key.get(key)
            if held is None:
                by_key[key] = card
            elif isinstance(held, tuple):
                by_key[key] = (*held, card)
            else:
                by_key[key] = (held, card)
        return True

    def discard(self, card: CardId) -> bool:
        """Forget ``card``. Returns False if it was not known."""
        if card not in self._cards:
            return False
        self._cards.discard(card)
        by_key = self._by_key
        for key in self._keys(card):
            held = by_key.get(key)
            if held is None:
                continue
            if not isinstance(held, tuple):
                if held == card:
                    del by_key[key]
                continue
            rest = tuple(c for c in held if c != card)
            by_key[key] = rest[0] if len(rest) == 1 else rest
        return True

    def clashes(self, card: CardId) -> dict[str, tuple[CardId, ...]]:
        """Variants of ``card`` that other known cards share, keyed by the variant text.

        For enrolment: a clash means some charger format cannot tell the cards apart.
        """
        out: dict[str, tuple[CardId, ...]] = {}
        for key in self._keys(card):
            held = self._by_key.get(key)
            if held is None:
                continue
            others = tuple(c for c in _as_tuple(held) if c != card)
            if others:
                out[key] = others
        return out

    def lookup(
        self, presented: str, fmt: IdTagFormat = IdTagFormat.AUTO, *, literal: bool = False
    ) -> CardLookup:
        """Find the card behind an idTag reported by a charger whose format is ``fmt``.

        ``AUTO`` tries every indexed format and reports in :attr:`CardLookup.fmt` which one
        matched. A concrete format matches that format and the canonical form (what a charger
        echoes after a RemoteStart). Opaque tokens match verbatim, case-insensitively. Never
        raises for odd input: it just does not match. A :class:`LiteralToken` matches only
        when ``literal`` (the presented text is itself such a token), and then verbatim.
        """
        if fmt is not IdTagFormat.AUTO and fmt not in self._formats:
            raise ValueError(f"this index was built without {fmt.value}; add it to formats")
        text = presented.strip()
        key = text.upper()
        lowercase = text != key and text.lower() == text
        found: dict[tuple[CardId, IdTagFormat | None], tuple[int, CardMatch]] = {}

        self._probe(key, None, fmt, lowercase, found, literal=literal)
        if len(key) <= 64 and _SEPARATED_HEX.fullmatch(key):
            joined = "".join(g.rjust(2, "0") for g in _SEPARATORS.split(key))
            self._probe(joined, False, fmt, lowercase, found)
        if len(key) > 1 and key[0] == "0" and _DIGITS.fullmatch(key):
            self._probe(key.lstrip("0") or "0", True, fmt, lowercase, found)

        ranked = sorted(found.values(), key=lambda item: item[0])
        matches = tuple(m for _, m in ranked)
        distinct = {m.card for m in matches}
        card: CardId | None = None
        chosen_fmt: IdTagFormat | None = None
        if ranked:
            best = ranked[0][0] // 100
            top = [m for rank, m in ranked if rank // 100 == best]
            if len({m.card for m in top}) == 1:
                card, chosen_fmt = top[0].card, top[0].fmt
        random_uid = False
        if not matches:
            guess = _quiet_parse(text, fmt)
            random_uid = guess is not None and guess.is_random_uid
        return CardLookup(
            presented=presented,
            requested=fmt,
            matches=matches,
            card=card,
            fmt=chosen_fmt,
            ambiguous=len(distinct) > 1,
            random_uid=random_uid,
        )

    def _probe(
        self,
        key: str,
        decimal: bool | None,
        requested: IdTagFormat,
        lowercase: bool,
        found: dict[tuple[CardId, IdTagFormat | None], tuple[int, CardMatch]],
        *,
        literal: bool = False,
    ) -> None:
        """Record the matches of one normalised key.

        ``decimal`` restricts the key to decimal formats (True) or hex formats (False): a key
        with its separators or leading zeros removed is only meaningful for those.
        """
        held = self._by_key.get(key)
        if held is None:
            return
        for card in _as_tuple(held):
            if card.uid is None:
                if isinstance(card, LiteralToken) and not literal:
                    continue
                if decimal is None and key == card.key:
                    found[card, None] = (0, CardMatch(card, None, canonical=True, lossless=True))
                continue
            if key == card.key and not decimal:
                label = IdTagFormat.HEX_LOWER if lowercase else IdTagFormat.HEX
                found[card, label] = (0, CardMatch(card, label, canonical=True, lossless=True))
                continue
            if requested is IdTagFormat.AUTO:
                candidates = self._key_formats
            elif requested in _CANONICAL_FORMATS:
                continue
            else:
                candidates = (requested,)
            for fmt in candidates:
                if decimal is not None and decimal != (fmt in _DECIMAL_FORMATS):
                    continue
                text = _render_uid(card.uid, fmt)
                if text is None or text.upper() != key:
                    continue
                lossless = is_lossless(card, fmt)
                tier = 0 if requested is not IdTagFormat.AUTO else (1 if lossless else 2)
                rank = tier * 100 + _RANK[fmt]
                previous = found.get((card, fmt))
                if previous is None or previous[0] > rank:
                    match = CardMatch(card, fmt, canonical=False, lossless=lossless)
                    found[card, fmt] = (rank, match)


def _as_tuple(held: CardId | tuple[CardId, ...]) -> tuple[CardId, ...]:
    return held if isinstance(held, tuple) else (held,)


def _quiet_parse(text: str, fmt: IdTagFormat) -> CardId | None:
    reading = IdTagFormat.HEX if fmt is IdTagFormat.AUTO else fmt
    try:
        return parse_card_id(text, reading, allow_random=True)
    except CardIdError:
        return None
