"""Who may charge where: groups of chargers, groups of cards, and shares with an end.

The commercial apps' vocabulary, on the installer's cards:

* a **charger group** names a set of chargers ("garage-1", "visitors"); wherever a card or a
  card group lists chargers, ``@garage-1`` stands for the chargers of that group, as they are
  when a card is presented (a charger added to the group is at once allowed);
* a **card group** ("residents", "staff", a company fleet) holds cards and may be limited to
  chargers and charger groups. A card's own charger list wins over its groups'; a card with none
  may charge wherever one of its groups allows (everywhere when a group has no limit, or when
  the card is in no group);
* a **share** allows a card, or every card of a group, on chargers or charger groups until a
  date and time ("guest until Sunday 18:00"), on top of what it may anyway. Once it ends, the
  card is refused there again (as ``Expired`` when that share was its only right there).

Card groups are the site's own: they are not OCPP ``parentIdTag`` (which lets any card of a
group stop another's session) and are never sent to a charger or the cloud.

Everything here is pure: no I/O, no clock (``now`` is passed in). :mod:`edgegw.store.cards`
persists it as one JSON document, :mod:`edgegw.auth.authorizer` decides with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

GROUP_PREFIX: Final = "@"
"""In a list of chargers, ``@name`` is the charger group ``name``."""
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class AccessError(ValueError):
    """A group, a share or a time is not acceptable; the message says why."""


def check_name(name: str, what: str) -> str:
    """A group name: 1 to 40 letters, digits, ``_``, ``.`` or ``-`` (no spaces: CSV cells)."""
    if not _NAME.fullmatch(name):
        raise AccessError(
            f"{what} name {name!r} must be 1 to 40 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit (e.g. garage-1)"
        )
    return name


def group_ref(name: str) -> str:
    """How a charger group is written in a list of chargers."""
    return GROUP_PREFIX + name


@dataclass(frozen=True, slots=True)
class CardGroup:
    """A named set of cards (by card key), limited to ``chargers`` (None: every charger)."""

    name: str
    members: frozenset[str] = frozenset()
    chargers: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Share:
    """A card (``card``, a card key) or a card group (``group``) allowed on ``chargers`` until
    ``until`` (Unix seconds). Exactly one of ``card`` and ``group`` is set."""

    id: int
    chargers: frozenset[str]
    until: float
    card: str | None = None
    group: str | None = None
    note: str = ""

    def active(self, now: float) -> bool:
        return now < self.until


@dataclass(frozen=True, slots=True)
class Verdict:
    """May a card charge at one charger? ``until``: its right there ends then (a share)."""

    allowed: bool
    reason: str
    until: float | None = None
    share_ended: bool = False
    """Refused where only an ended share allowed it: the card is told ``Expired``."""


@dataclass(frozen=True)
class Access:
    """Charger groups, card groups and shares: the site's rules on where cards may charge."""

    charger_groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    card_groups: Mapping[str, CardGroup] = field(default_factory=dict)
    shares: tuple[Share, ...] = ()
    _groups_of: dict[str, tuple[CardGroup, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _card_shares: dict[str, tuple[Share, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        groups_of: dict[str, list[CardGroup]] = {}
        for group in self.card_groups.values():
            for key in group.members:
                groups_of.setdefault(key, []).append(group)
        self._groups_of.update({k: tuple(v) for k, v in groups_of.items()})
        by_card: dict[str, list[Share]] = {}
        for share in self.shares:
            if share.card is not None:
                by_card.setdefault(share.card, []).append(share)
        self._card_shares.update({k: tuple(v) for k, v in by_card.items()})

    @property
    def empty(self) -> bool:
        return not (self.charger_groups or self.card_groups or self.shares)

    # ------------------------------------------------------------ reading

    def expand(self, targets: Iterable[str]) -> frozenset[str]:
        """Charger ids of ``targets`` (ids and ``@groups``; an unknown group has none)."""
        out: set[str] = set()
        for target in targets:
            if target.startswith(GROUP_PREFIX):
                out |= self.charger_groups.get(target[len(GROUP_PREFIX) :], frozenset())
            else:
                out.add(target)
        return frozenset(out)

    def groups_of(self, card_key: str) -> tuple[CardGroup, ...]:
        return self._groups_of.get(card_key, ())

    def standing(self, card_key: str, chargers: frozenset[str] | None) -> frozenset[str] | None:
        """Where a card may charge anyway (None: everywhere): its own list, else its groups'."""
        if chargers is not None:
            return self.expand(chargers)
        groups = self.groups_of(card_key)
        if not groups or any(g.chargers is None for g in groups):
            return None
        allowed: set[str] = set()
        for group in groups:
            allowed |= self.expand(group.chargers or ())
        return frozenset(allowed)

    def shares_of(self, card_key: str) -> list[Share]:
        """The shares of the card and of its groups."""
        found = list(self._card_shares.get(card_key, ()))
        if self.shares and (names := {g.name for g in self.groups_of(card_key)}):
            found += [s for s in self.shares if s.group in names]
        return found

    def verdict(
        self, card_key: str, chargers: frozenset[str] | None, charger_id: str, now: float
    ) -> Verdict:
        """May the card (its key and own charger list) charge at ``charger_id`` at ``now``?"""
        standing = self.standing(card_key, chargers)
        if standing is None or charger_id in standing:
            return Verdict(True, "")
        ended: Share | None = None
        best: Share | None = None
        for share in self.shares_of(card_key):
            if charger_id not in self.expand(share.chargers):
                continue
            if share.active(now):
                if best is None or share.until > best.until:
                    best = share
            elif ended is None or share.until > ended.until:
                ended = share
        if best is not None:
            return Verdict(True, f"shared here until {_iso(best.until)}", until=best.until)
        where = ", ".join(sorted(standing)) or "no charger"
        why = f"works only on {where}, not on {charger_id}"
        if chargers is None:
            names = ", ".join(g.name for g in self.groups_of(card_key))
            why = f"works only on {where} (its group(s) {names}), not on {charger_id}"
        if ended is not None:
            return Verdict(
                False,
                f"{why}; its share here ended at {_iso(ended.until)}",
                share_ended=True,
            )
        return Verdict(False, why)

    def places(
        self, card_key: str, chargers: frozenset[str] | None, now: float
    ) -> tuple[frozenset[str] | None, dict[str, float]]:
        """Where the card may charge: its standing chargers (None: all) and, per charger it
        may use only through an active share, when that share ends (for local lists)."""
        standing = self.standing(card_key, chargers)
        if standing is None:
            return None, {}
        shared: dict[str, float] = {}
        for share in self.shares_of(card_key):
            if not share.active(now):
                continue
            for charger_id in self.expand(share.chargers) - standing:
                shared[charger_id] = max(shared.get(charger_id, 0.0), share.until)
        return standing, shared

    def ended_shares(
        self, card_key: str, chargers: frozenset[str] | None, now: float
    ) -> frozenset[str]:
        """The chargers where the card may not charge only because its share there ended
        (refused as ``Expired`` there, see :meth:`verdict`)."""
        standing = self.standing(card_key, chargers)
        if standing is None:
            return frozenset()
        ended: set[str] = set()
        active: set[str] = set()
        for share in self.shares_of(card_key):
            (active if share.active(now) else ended).update(self.expand(share.chargers))
        return frozenset(ended - active - standing)

    # ------------------------------------------------------------ changing (new values)

    def with_charger_group(self, name: str, chargers: frozenset[str]) -> Access:
        """The charger group ``name`` set to ``chargers`` (empty: the group is deleted)."""
        check_name(name, "charger group")
        groups = dict(self.charger_groups)
        if chargers:
            if any(c.startswith(GROUP_PREFIX) for c in chargers):
                raise AccessError("a charger group holds chargers, not other groups")
            groups[name] = frozenset(chargers)
        elif groups.pop(name, None) is None:
            raise AccessError(f"no charger group {name!r}")
        return replace(self, charger_groups=groups)

    def with_card_group(self, group: CardGroup) -> Access:
        check_name(group.name, "card group")
        self._check_targets(group.chargers or ())
        return replace(self, card_groups={**self.card_groups, group.name: group})

    def without_card_group(self, name: str) -> Access:
        if name not in self.card_groups:
            raise AccessError(f"no card group {name!r}")
        groups = {k: g for k, g in self.card_groups.items() if k != name}
        return replace(
            self, card_groups=groups, shares=tuple(s for s in self.shares if s.group != name)
        )

    def with_share(self, share: Share) -> Access:
        if (share.card is None) == (share.group is None):
            raise AccessError("a share is of one card or of one card group")
        if share.group is not None and share.group not in self.card_groups:
            raise AccessError(f"no card group {share.group!r}")
        if not share.chargers:
            raise AccessError("a share names the chargers or charger groups it is for")
        self._check_targets(share.chargers)
        return replace(self, shares=(*self.shares, share))

    def without_share(self, share_id: int) -> Access:
        if not any(s.id == share_id for s in self.shares):
            raise AccessError(f"no share {share_id}")
        return replace(self, shares=tuple(s for s in self.shares if s.id != share_id))

    def without_card(self, card_key: str) -> Access:
        """The card leaves every group and its shares go (it was removed)."""
        if card_key not in self._groups_of and card_key not in self._card_shares:
            return self
        groups = {
            name: replace(g, members=g.members - {card_key}) if card_key in g.members else g
            for name, g in self.card_groups.items()
        }
        shares = tuple(s for s in self.shares if s.card != card_key)
        return replace(self, card_groups=groups, shares=shares)

    def without_ended_shares(self, now: float, keep: float = 30 * 86400.0) -> Access:
        """Shares that ended more than ``keep`` seconds ago are forgotten."""
        kept = tuple(s for s in self.shares if s.until > now - keep)
        return self if len(kept) == len(self.shares) else replace(self, shares=kept)

    def next_share_id(self) -> int:
        return max((s.id for s in self.shares), default=0) + 1

    def check_chargers(self, targets: Iterable[str]) -> None:
        """Every ``@group`` of ``targets`` exists; AccessError names the first that does not."""
        self._check_targets(targets)

    def _check_targets(self, targets: Iterable[str]) -> None:
        for target in targets:
            if target.startswith(GROUP_PREFIX):
                name = target[len(GROUP_PREFIX) :]
                if name not in self.charger_groups:
                    raise AccessError(
                        f"no charger group {name!r}; create it with `edgegw cards charger-group "
                        f"{name} CHARGER...`"
                    )

    # ------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        return {
            "charger_groups": {k: sorted(v) for k, v in sorted(self.charger_groups.items())},
            "card_groups": {
                k: {
                    "members": sorted(g.members),
                    "chargers": None if g.chargers is None else sorted(g.chargers),
                }
                for k, g in sorted(self.card_groups.items())
            },
            "shares": [
                {
                    "id": s.id,
                    "card": s.card,
                    "group": s.group,
                    "chargers": sorted(s.chargers),
                    "until": s.until,
                    "note": s.note,
                }
                for s in self.shares
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Access:
        charger_groups = {
            str(k): frozenset(map(str, v)) for k, v in dict(data.get("charger_groups", {})).items()
        }
        card_groups = {
            str(k): CardGroup(
                str(k),
                frozenset(map(str, g.get("members", ()))),
                None if g.get("chargers") is None else frozenset(map(str, g["chargers"])),
            )
            for k, g in dict(data.get("card_groups", {})).items()
        }
        shares = tuple(
            Share(
                id=int(s["id"]),
                chargers=frozenset(map(str, s["chargers"])),
                until=float(s["until"]),
                card=s.get("card"),
                group=s.get("group"),
                note=str(s.get("note", "")),
            )
            for s in data.get("shares", ())
        )
        return cls(charger_groups, card_groups, shares)


def parse_until(text: str, now: float, tz: tzinfo | None = None) -> float:
    """When a share ends, as an installer types it, in the site's time zone ``tz`` (None: the
    machine's). ``2026-12-13T18:00:00+01:00`` (ISO, with or without an offset), ``2026-12-13
    18:00``, ``2026-12-13`` (the end of that day), or a weekday and a time: ``sunday 18:00``
    is the next Sunday at 18:00 (today if that is still to come). Must lie in the future."""
    shown = " ".join(text.strip().split())
    words = shown.lower().split(" ")
    if words and words[0] in _WEEKDAYS:
        if len(words) != 2:
            raise AccessError(f"{text!r}: give a weekday and a time, like 'sunday 18:00'")
        hour, minute = _clock_time(words[1], text)
        today = datetime.fromtimestamp(now, UTC).astimezone(tz)
        ahead = (_WEEKDAYS.index(words[0]) - today.weekday()) % 7
        day = today.date() + timedelta(days=ahead)
        at = _local(datetime(day.year, day.month, day.day, hour, minute), tz)
        if at.timestamp() <= now:
            at = _local(datetime(day.year, day.month, day.day, hour, minute) + timedelta(7), tz)
        return at.timestamp()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", shown):
            at = _local(datetime.fromisoformat(shown) + timedelta(days=1), tz)
        else:
            parsed = datetime.fromisoformat(shown)
            at = parsed if parsed.tzinfo is not None else _local(parsed, tz)
    except ValueError:
        raise AccessError(
            f"{text!r} is not a date and time: write 2026-12-13 18:00, 2026-12-13 (through that "
            "day) or a weekday and a time such as 'sunday 18:00'"
        ) from None
    if at.timestamp() <= now:
        raise AccessError(f"{text!r} is already past")
    return at.timestamp()


def _clock_time(word: str, text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?", word)
    if match is None or int(match.group(1)) > 23 or int(match.group(2) or 0) > 59:
        raise AccessError(f"{text!r}: the time must read like 18:00")
    return int(match.group(1)), int(match.group(2) or 0)


def _local(naive: datetime, tz: tzinfo | None) -> datetime:
    """A wall-clock time in ``tz`` (None: the machine's zone, with its daylight saving)."""
    if tz is None:
        return naive.astimezone()  # the system's rules for that date
    return naive.replace(tzinfo=tz)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
