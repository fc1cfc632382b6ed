"""What a charging session costs, for a building that bills its residents itself.

A tariff (``[[tariffs]]`` in the configuration) prices a session with a fixed fee per session,
a price per kWh and a price per hour, and may have time-of-day bands (a cheaper night, a
dearer evening peak) with their own kWh and hour prices. Bands are wall-clock times in the
tariff's time zone, so a night band ``22:00``-``06:00`` lasts nine real hours on the night the
clocks go back and seven on the night they go forward; a band whose end is before its start
crosses midnight.

A session's energy is known only as ``meterStop - meterStart``: it is spread over the session's
time evenly (constant power), so the part charged in each band is in proportion to the time
spent in it. The session's tariff is the first whose card groups hold its card or whose charger
groups hold its charger; else the first tariff for neither (the site's default); else none, and
the session has no cost.

A session is priced once, when its StopTransaction is recorded (:func:`price_session`, with
the tariffs and the card's groups of that moment); the price is stored with it, so a tariff or
a group changed later never re-prices a billed month. Only sessions recorded before that
(schema 4) are priced when shown. The times priced are the charger's, checked against when the
gateway recorded each message (:func:`checked_time`): a charger whose clock is unset (1970
after a power loss) or far off is priced over the gateway's times instead.

Everything here is pure arithmetic, no I/O. Amounts are rounded to the cent only when shown.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo

from edgegw.auth.access import Access
from edgegw.config import TariffConfig

_DAY_MIN: Final = 24 * 60
_GRID: Final = 900.0
"""Every quarter of an hour (UTC) is a piece boundary: every zone changes its clocks on one, so
no piece straddles a clock change and a piece's middle tells its band."""


CLOCK_TOLERANCE: Final = 300.0
"""Seconds a charger's timestamp may be away from when the gateway recorded the message."""


class TariffError(ValueError):
    """The tariffs cannot price sessions together (the message says why)."""


@dataclass(frozen=True, slots=True)
class Band:
    """Minutes of the day ``[start, end)`` (end before start: across midnight) and prices."""

    start: int
    end: int
    per_kwh: float
    per_hour: float

    def holds(self, minute: float) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True, slots=True)
class Tariff:
    name: str
    currency: str
    tz: tzinfo
    per_session: float = 0.0
    per_kwh: float = 0.0
    per_hour: float = 0.0
    bands: tuple[Band, ...] = ()
    card_groups: frozenset[str] = frozenset()
    charger_groups: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: TariffConfig) -> Tariff:
        bands = tuple(
            Band(
                _minutes(b.start),
                _minutes(b.end),
                config.per_kwh if b.per_kwh is None else b.per_kwh,
                config.per_hour if b.per_hour is None else b.per_hour,
            )
            for b in config.bands
        )
        return cls(
            config.name,
            config.currency,
            ZoneInfo(config.timezone),
            config.per_session,
            config.per_kwh,
            config.per_hour,
            bands,
            frozenset(config.card_groups),
            frozenset(config.charger_groups),
        )

    def rates_at(self, ts: float) -> tuple[float, float]:
        """Price per kWh and per hour at the instant ``ts``."""
        local = datetime.fromtimestamp(ts, self.tz)
        minute = local.hour * 60 + local.minute + local.second / 60
        for band in self.bands:
            if band.holds(minute):
                return band.per_kwh, band.per_hour
        return self.per_kwh, self.per_hour

    def cost(self, start: float, end: float, energy_wh: float) -> float:
        """What a session from ``start`` to ``end`` (Unix seconds) that drew ``energy_wh``
        costs, unrounded. A session without a duration is priced at its start's rates."""
        kwh = max(energy_wh, 0.0) / 1000
        if end <= start:
            per_kwh, _ = self.rates_at(start)
            return self.per_session + per_kwh * kwh
        total = end - start
        amount = self.per_session
        points = self._boundaries(start, end)
        for a, b in itertools.pairwise(points):
            per_kwh, per_hour = self.rates_at((a + b) / 2)
            share = (b - a) / total
            amount += per_kwh * kwh * share + per_hour * (b - a) / 3600
        return amount

    def _boundaries(self, start: float, end: float) -> list[float]:
        points = {start, end}
        tick = math.floor(start / _GRID) * _GRID + _GRID
        if self.bands:
            while tick < end:
                points.add(tick)
                tick += _GRID
            edges = {m for band in self.bands for m in (band.start, band.end)}
            first = datetime.fromtimestamp(start, self.tz).date() - timedelta(days=1)
            last = datetime.fromtimestamp(end, self.tz).date() + timedelta(days=1)
            day = first
            while day <= last:
                for minute in edges:
                    for at in _instants(day, minute, self.tz):
                        if start < at < end:
                            points.add(at)
                day += timedelta(days=1)
        return sorted(points)


class Tariffs:
    """The site's tariffs, in the configuration's order; which one prices a session."""

    def __init__(self, tariffs: Sequence[Tariff]) -> None:
        currencies = {t.currency for t in tariffs}
        if len(currencies) > 1:
            raise TariffError(
                f"the tariffs use several currencies ({', '.join(sorted(currencies))}); a report "
                "adds them up, so give every tariff the site's one currency"
            )
        self.tariffs = tuple(tariffs)
        self.currency = next(iter(currencies), None)

    @classmethod
    def from_config(cls, configs: Iterable[TariffConfig]) -> Tariffs:
        return cls([Tariff.from_config(c) for c in configs])

    def __bool__(self) -> bool:
        return bool(self.tariffs)

    def for_session(
        self, card_groups: Collection[str], charger_groups: Collection[str]
    ) -> Tariff | None:
        """The tariff of a session whose card is in ``card_groups`` and whose charger is in
        ``charger_groups``: the first that names one of them, else the first that names none."""
        default: Tariff | None = None
        for tariff in self.tariffs:
            if tariff.card_groups & set(card_groups) or tariff.charger_groups & set(charger_groups):
                return tariff
            if default is None and not tariff.card_groups and not tariff.charger_groups:
                default = tariff
        return default


@dataclass(frozen=True, slots=True)
class Priced:
    """A finished session's tariff, its (unrounded) cost and its card's groups then."""

    tariff: str
    cost: float
    card_groups: tuple[str, ...]


def price_session(
    tariffs: Tariffs,
    access: Access,
    charger_id: str,
    card_key: str | None,
    *,
    start: float,
    end: float,
    energy_wh: float,
) -> Priced | None:
    """The price of a session of the card ``card_key`` (None: not an installer card) at
    ``charger_id`` from ``start`` to ``end``; None when no tariff applies."""
    if not tariffs:
        return None
    card_groups = () if card_key is None else tuple(g.name for g in access.groups_of(card_key))
    charger_groups = [
        name for name, members in access.charger_groups.items() if charger_id in members
    ]
    tariff = tariffs.for_session(card_groups, charger_groups)
    if tariff is None:
        return None
    return Priced(tariff.name, tariff.cost(start, end, energy_wh), card_groups)


def checked_time(charger: float | None, recorded: float | None) -> tuple[float | None, bool]:
    """The time to price a session with: the charger's ``charger``, unless it is more than
    :data:`CLOCK_TOLERANCE` away from ``recorded`` (when the gateway recorded the message; None:
    unknown) or missing. The flag says the gateway's time was used instead."""
    if recorded is None:
        return charger, False
    if charger is None or abs(charger - recorded) > CLOCK_TOLERANCE:
        return recorded, True
    return charger, False


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return (int(hours) * 60 + int(minutes)) % _DAY_MIN


def _instants(day: date, minute: int, tz: tzinfo) -> set[float]:
    """When the wall clock of ``tz`` shows ``minute`` on ``day`` (twice when clocks go back)."""
    at = datetime.combine(day, time(minute // 60, minute % 60))
    return {at.replace(tzinfo=tz, fold=fold).timestamp() for fold in (0, 1)}
