"""The monthly billing report: finished sessions per card, per owner and per card group."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from edgegw.auth.locallist import Card
from edgegw.store.session_cards import CardResolver
from edgegw.store.session_model import Month, Session, SessionState, cents, iso_utc, owner_key


@dataclass(slots=True)
class CardTotal:
    """Finished sessions of one card (or of one unknown idTag) in the month.

    ``id_tag`` is the card's canonical id, or for an unknown card the tag as reported.
    """

    card: Card | None
    id_tag: str
    sessions: int = 0
    energy_wh: int = 0
    seconds: float = 0.0
    cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "card": None if self.card is None else self.card.id.canonical,
            "id_tag": self.id_tag,
            "known": self.card is not None,
            "owner": None if self.card is None else self.card.owner,
            "label": None if self.card is None else self.card.label,
            **_amounts(self.sessions, self.energy_wh, self.seconds, self.cost),
        }


@dataclass(slots=True)
class OwnerTotal:
    """Finished sessions of one owner's cards; owner None: unknown cards and cards without."""

    owner: str | None
    cards: list[str] = field(default_factory=list)
    sessions: int = 0
    energy_wh: int = 0
    seconds: float = 0.0
    cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "cards": self.cards,
            **_amounts(self.sessions, self.energy_wh, self.seconds, self.cost),
        }


@dataclass(slots=True)
class GroupTotal:
    """Finished sessions of the cards of one card group (a card in two groups counts in both)."""

    group: str
    cards: set[str] = field(default_factory=set)
    sessions: int = 0
    energy_wh: int = 0
    seconds: float = 0.0
    cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "cards": sorted(self.cards),
            **_amounts(self.sessions, self.energy_wh, self.seconds, self.cost),
        }


def _amounts(
    sessions: int, energy_wh: int, seconds: float, cost: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sessions": sessions,
        "energy_wh": energy_wh,
        "energy_kwh": round(energy_wh / 1000, 3),
        "hours": round(seconds / 3600, 2),
    }
    if cost is not None:
        out["cost"] = cents(cost)
    return out


def _add_cost(total: float | None, cost: float | None) -> float | None:
    if cost is None:
        return total
    return cost if total is None else total + cost


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    month: Month
    tz: str
    start_ts: float
    end_ts: float
    generated_ts: float
    cards: list[CardTotal]
    owners: list[OwnerTotal]
    open_at_end: list[Session]
    unclosed: list[Session]
    meter_backwards: int
    """Finished sessions whose meter went backwards (counted as 0 Wh)."""
    currency: str | None = None
    """The tariffs' currency: costs are shown when it is set."""
    groups: list[GroupTotal] = field(default_factory=list)

    @property
    def sessions(self) -> int:
        return sum(c.sessions for c in self.cards)

    @property
    def energy_wh(self) -> int:
        return sum(c.energy_wh for c in self.cards)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.cards)

    @property
    def cost(self) -> float | None:
        if self.currency is None:
            return None
        return sum(c.cost or 0.0 for c in self.cards)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": str(self.month),
            "timezone": self.tz,
            "start": iso_utc(self.start_ts),
            "start_ts": self.start_ts,
            "end": iso_utc(self.end_ts),
            "end_ts": self.end_ts,
            "generated_at": iso_utc(self.generated_ts),
            "generated_ts": self.generated_ts,
            "basis": "finished sessions, counted in the month they ended",
            "cards": [c.to_json() for c in self.cards],
            "owners": [o.to_json() for o in self.owners],
            "totals": _amounts(self.sessions, self.energy_wh, self.seconds, self.cost),
            **(
                {}
                if self.currency is None
                else {"currency": self.currency, "groups": [g.to_json() for g in self.groups]}
            ),
            "meter_backwards": self.meter_backwards,
            "open_at_month_end": [s.to_json() for s in self.open_at_end],
            "unclosed": [s.to_json() for s in self.unclosed],
        }


def monthly_report(
    sessions: Iterable[Session],
    month: Month,
    tz: tzinfo = UTC,
    *,
    now: float,
    resolver: CardResolver | None = None,
) -> MonthlyReport:
    """Energy, sessions and hours per card and per owner for ``month`` (in ``tz``).

    Counted: sessions that finished in the month. Listed apart: sessions started before the
    month's end that had not finished by then (open at month end; they count in the month they
    end) and sessions started in the month that never got a StopTransaction (unclosed).
    With tariffs (``resolver.tariffs``), costs are added up too, and per card group.
    """
    start, end = month.bounds(tz)
    by_card: dict[str, CardTotal] = {}
    groups: dict[str, GroupTotal] = {}
    open_at_end: list[Session] = []
    unclosed: list[Session] = []
    backwards = 0
    for session in sessions:
        if session.state is SessionState.UNCLOSED:
            if start <= session.started_ts < end:
                unclosed.append(session)
            continue
        if session.started_ts >= end:
            continue
        if session.state is SessionState.OPEN or session.ended_ts >= end:
            open_at_end.append(session)
            continue
        if session.ended_ts < start:
            continue
        key = session.card.key if session.card is not None else "tag:" + session.id_tag.upper()
        total = by_card.get(key)
        if total is None:
            tag = session.id_tag if session.card is None else session.card.id.canonical
            total = by_card[key] = CardTotal(session.card, tag)
        total.sessions += 1
        total.energy_wh += session.energy_wh or 0
        total.seconds += session.duration_s or 0.0
        total.cost = _add_cost(total.cost, session.cost)
        backwards += session.meter_backwards
        if resolver is not None and resolver.tariffs and session.card is not None:
            names = session.card_groups  # when it was priced at its stop, else today's
            if names is None:
                names = tuple(g.name for g in resolver.access.groups_of(session.card.key))
            for name in names:
                sums = groups.setdefault(name, GroupTotal(name))
                sums.cards.add(session.card.id.canonical)
                sums.sessions += 1
                sums.energy_wh += session.energy_wh or 0
                sums.seconds += session.duration_s or 0.0
                sums.cost = _add_cost(sums.cost, session.cost)
    cards = sorted(
        by_card.values(),
        key=lambda c: (c.card is None, c.card.owner if c.card else "", c.id_tag),
    )
    owners: dict[str | None, OwnerTotal] = {}  # by owner_key, as the owner filter compares
    for total in cards:
        written = total.card.owner.strip() if total.card is not None else ""
        folded = owner_key(written) or None
        group = owners.get(folded)
        if group is None:
            group = owners[folded] = OwnerTotal(written or None)
        group.cards.append(total.card.id.canonical if total.card else total.id_tag)
        group.sessions += total.sessions
        group.energy_wh += total.energy_wh
        group.seconds += total.seconds
        group.cost = _add_cost(group.cost, total.cost)
    return MonthlyReport(
        month=month,
        tz=str(tz),
        start_ts=start,
        end_ts=end,
        generated_ts=now,
        cards=cards,
        owners=sorted(owners.values(), key=lambda o: (o.owner is None, o.owner or "")),
        open_at_end=sorted(open_at_end, key=lambda s: s.started_ts),
        unclosed=sorted(unclosed, key=lambda s: s.started_ts),
        meter_backwards=backwards,
        currency=None if resolver is None or not resolver.tariffs else resolver.tariffs.currency,
        groups=sorted(groups.values(), key=lambda g: g.group),
    )
