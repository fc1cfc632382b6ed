"""Card learn mode: capture the idTag of the next card tapped at one charger.

Installers enrol a card by tapping it at the charger it will be used on, exactly as that
charger reports it (field lesson R7: a charger may rewrite the tag). :class:`CardLearner` is a
subscriber of the daemon's event hub: it sees every card a charger presented once it was
answered (:class:`~edgegw.ocpp.events.CardAnswered`, from ``Authorize`` and
``StartTransaction``), and hands the idTag to whoever waits at that charger. It only watches: the
charger's answer is the one the normal policy gave (a card not enrolled yet is usually
refused), and nothing is added here; the ``cards.learn`` op returns what was captured and the
CLI enrols it.

A ``StartTransaction`` started remotely carries the cloud's idTag, not a tapped card's; the
``Authorize`` that precedes a tapped start arrives first, so in practice the tap is captured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgegw.auth.idtags import CardId, CardIdError, IdTagFormat, interpretations, parse_card_id
from edgegw.ocpp.events import CardAnswered, Event

FormatSource = Literal["configured", "detected", "assumed"]
"""Where the format a captured tag was read in comes from: the charger's configuration, the
gateway's detection from earlier taps, or an assumption (hex, OCPP's recommendation)."""

LEARNED_ACTIONS: Final = frozenset({"Authorize", "StartTransaction"})
"""Charger calls whose ``idTag`` is a card presented at the charger (``CardAnswered.during``)."""


@dataclass(frozen=True, slots=True)
class CapturedTag:
    """An idTag a charger reported, as it reported it."""

    charger_id: str
    action: str
    id_tag: str
    answered: str | None
    """The ``idTagInfo.status`` the charger was answered (None if the answer had none)."""
    at: float


class CardLearner:
    """Waits for the next idTag at a charger; an event subscriber (``handle``).

    Any number of waits may run at once, also at the same charger: one tag ends all of them.
    Use it from the event loop's thread only (observers are called there).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._waiting: dict[str, list[asyncio.Future[CapturedTag]]] = {}
        self._changed = asyncio.Condition()

    def waiting(self) -> dict[str, int]:
        """How many waits are open per charger (for status displays)."""
        return {charger: len(futures) for charger, futures in self._waiting.items() if futures}

    async def capture(self, charger_id: str, timeout: float) -> CapturedTag:
        """The next idTag ``charger_id`` reports; :class:`TimeoutError` after ``timeout`` s."""
        future: asyncio.Future[CapturedTag] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(charger_id, []).append(future)
        async with self._changed:
            self._changed.notify_all()
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            futures = self._waiting.get(charger_id, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(charger_id, None)

    async def until_waiting(self, charger_id: str) -> None:
        """Return once a capture is waiting at ``charger_id`` (for displays and tests)."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._waiting.get(charger_id)))

    # ------------------------------------------------------------ events

    def event_routes(self) -> Mapping[type[Event], Callable[[Any], None]]:
        """It uses only the cards chargers present (the hub's routing)."""
        return {CardAnswered: self.handle}

    def handle(self, event: Event) -> None:
        """A wait outlives a reconnect (the charger may come back before the tap): only the
        cards chargers present matter here."""
        if not isinstance(event, CardAnswered) or event.during not in LEARNED_ACTIONS:
            return
        futures = self._waiting.pop(event.charger_id, None)
        if not futures:
            return
        captured = CapturedTag(
            event.charger_id, event.during, event.id_tag, event.status, self._clock()
        )
        for future in futures:
            if not future.done():
                future.set_result(captured)


@dataclass(frozen=True, slots=True)
class LearnedCard:
    """A captured idTag read as a card, in the format the charger is known (or assumed) to use.

    ``card`` is None when the tag cannot be read as one card; ``problem`` then says why. A
    random UID is read (``card`` set) but has a ``problem``: it cannot be enrolled.
    ``alternatives`` are the other cards the tag reads as under other formats, given when the
    format is only assumed, so the installer can see what a wrong assumption would mean.
    """

    id_tag: str
    card: CardId | None
    fmt: IdTagFormat
    source: FormatSource
    problem: str | None
    alternatives: dict[IdTagFormat, CardId]


def read_captured(id_tag: str, fmt: IdTagFormat, source: FormatSource) -> LearnedCard:
    """Read ``id_tag`` as reported by a charger that writes cards in ``fmt``.

    ``AUTO`` (format not known) reads hex, OCPP's recommendation, and lists the other readings;
    a tag that is not hex but reads as exactly one card under the other formats (a long
    decimal, say) is read that way.
    """
    if fmt is not IdTagFormat.AUTO:
        try:
            card = parse_card_id(id_tag, fmt, allow_random=True)
        except CardIdError as exc:
            return LearnedCard(id_tag, None, fmt, source, str(exc), {})
        return LearnedCard(id_tag, card, fmt, source, _problem(card), {})
    readings = interpretations(id_tag)
    try:
        card = parse_card_id(id_tag, IdTagFormat.HEX, allow_random=True)
    except CardIdError as exc:
        distinct = {c for c in readings.values() if not c.is_random_uid}
        if len(distinct) == 1:
            (only,) = distinct
            how = next(f for f, c in readings.items() if c == only)
            return LearnedCard(id_tag, only, how, source, None, {})
        if not readings:
            return LearnedCard(id_tag, None, IdTagFormat.AUTO, source, str(exc), {})
        listed = "; ".join(f"{c.canonical} ({f.value})" for f, c in readings.items())
        problem = (
            f"{id_tag!r} reads as different cards depending on the charger's format: {listed}. "
            "Set the charger's format (`edgegw chargers set <charger> --idtag-format FORMAT`), "
            "then learn the card again"
        )
        return LearnedCard(id_tag, None, IdTagFormat.AUTO, source, problem, readings)
    others: dict[IdTagFormat, CardId] = {f: c for f, c in readings.items() if c != card}
    shown = id_tag.strip()
    if shown.isdigit() and len(shown) not in (8, 14, 20) and others:
        # Read as hex only after removing a check byte that happened to match (1 in 256 for
        # a printed decimal number): both readings are plausible, so guessing could enrol the
        # wrong card.
        listed = "; ".join(f"{c.canonical} ({f.value})" for f, c in readings.items())
        problem = (
            f"{id_tag!r} is a bare number that reads as different cards depending on the "
            f"charger's format: {listed}. Set the charger's format (`edgegw chargers set "
            "<charger> --idtag-format FORMAT`), then learn the card again"
        )
        return LearnedCard(id_tag, None, IdTagFormat.AUTO, source, problem, readings)
    return LearnedCard(id_tag, card, IdTagFormat.HEX, source, _problem(card), others)


def _problem(card: CardId) -> str | None:
    if card.is_random_uid:
        return (
            f"{card.canonical} is a random UID (4 bytes starting with 08): the card shows a new "
            "UID on every tap, so it cannot be enrolled"
        )
    return None
