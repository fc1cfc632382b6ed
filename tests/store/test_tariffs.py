"""Tariff arithmetic (edgegw.store.tariffs), property-tested: bands crossing midnight,
sessions spanning bands, daylight saving time."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from edgegw.config import ConfigError, TariffConfig, parse_config
from edgegw.store.tariffs import Tariff, TariffError, Tariffs

BRUSSELS = "Europe/Brussels"
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
YEAR = 366 * 86400.0


def tariff(**fields: object) -> Tariff:
    return Tariff.from_config(TariffConfig.model_validate({"name": "t", **fields}))


NIGHT = {
    "timezone": BRUSSELS,
    "per_session": 1.0,
    "per_kwh": 0.40,
    "per_hour": 0.50,
    "bands": [
        {"start": "22:00", "end": "06:00", "per_kwh": 0.20, "per_hour": 0.0},  # across midnight
        {"start": "17:00", "end": "20:00", "per_kwh": 0.60},  # evening peak, the base per hour
    ],
}
starts = st.floats(T0, T0 + YEAR)
durations = st.floats(0, 3 * 86400.0)
energies = st.floats(0, 200_000.0)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@given(start=starts, duration=durations, energy=energies)
def test_bands_with_the_base_prices_change_nothing(
    start: float, duration: float, energy: float
) -> None:
    same = {"start": "22:00", "end": "06:00", "per_kwh": 0.40, "per_hour": 0.50}
    flat = tariff(per_session=1.0, per_kwh=0.40, per_hour=0.50, timezone=BRUSSELS)
    banded = tariff(per_session=1.0, per_kwh=0.40, per_hour=0.50, timezone=BRUSSELS, bands=[same])
    expected = 1.0 + 0.40 * energy / 1000 + (0.50 * duration / 3600 if duration else 0.0)
    assert close(flat.cost(start, start + duration, energy), expected)
    assert close(banded.cost(start, start + duration, energy), expected)


@given(start=starts, first=durations, second=durations, power_w=st.floats(0, 22_000))
def test_a_session_costs_its_parts_at_constant_power(
    start: float, first: float, second: float, power_w: float
) -> None:
    """Split anywhere, the two halves cost the whole (the fee once): spanning bands is exact."""
    t = tariff(**NIGHT)
    middle, end = start + first, start + first + second

    def energy(a: float, b: float) -> float:
        return power_w * (b - a) / 3600

    whole = t.cost(start, end, energy(start, end))
    parts = t.cost(start, middle, energy(start, middle)) + t.cost(middle, end, energy(middle, end))
    if first and second:
        assert close(whole, parts - 1.0)


@example(day=296, start_min=22 * 60 + 280, length_min=120, energy=1000.0)  # clocks go back
@example(day=86, start_min=22 * 60 + 200, length_min=300, energy=1000.0)  # clocks go forward
@given(
    day=st.integers(0, 364),
    start_min=st.integers(22 * 60, 22 * 60 + 480 - 1),
    length_min=st.integers(1, 480),
    energy=energies,
)
def test_inside_the_night_band_the_night_prices_apply_across_midnight(
    day: int, start_min: int, length_min: int, energy: float
) -> None:
    t = tariff(**NIGHT)
    tz = ZoneInfo(BRUSSELS)
    evening = datetime.fromtimestamp(T0 + day * 86400, tz).date()
    wall = datetime.combine(evening, time(22, 0)) + timedelta(minutes=start_min - 22 * 60)
    start = wall.replace(tzinfo=tz).timestamp()  # a wall-clock time of the night, DST or not
    end = min(start + length_min * 60, _night_end(start, tz))
    if end <= start:
        return
    assert close(t.cost(start, end, energy), 1.0 + 0.20 * energy / 1000)


def _night_end(start: float, tz: ZoneInfo) -> float:
    """06:00 local after ``start`` (the band's end, daylight saving or not)."""
    local = datetime.fromtimestamp(start, tz)
    morning = local.replace(hour=6, minute=0, second=0, microsecond=0)
    if morning <= local:
        morning = datetime.fromtimestamp(morning.timestamp() + 86400, tz).replace(
            hour=6, minute=0, second=0, microsecond=0
        )
    return morning.timestamp()


@pytest.mark.parametrize(
    ("night", "hours"),
    [
        ("2026-10-24", 9),  # the clocks go back at 03:00: the night lasts nine hours
        ("2026-03-28", 7),  # they go forward at 02:00: seven hours
        ("2026-06-13", 8),
    ],
)
def test_a_whole_night_lasts_as_long_as_the_clocks_say(night: str, hours: int) -> None:
    t = tariff(
        timezone=BRUSSELS, per_hour=1.0, bands=[{"start": "22:00", "end": "06:00", "per_hour": 2.0}]
    )
    tz = ZoneInfo(BRUSSELS)
    evening = datetime.fromisoformat(f"{night}T22:00:00").replace(tzinfo=tz).timestamp()
    morning = _night_end(evening, tz)
    assert morning - evening == hours * 3600
    # From 21:00 to 07:00: one base hour each side, the night at the band's price.
    assert close(t.cost(evening - 3600, morning + 3600, 0), 2.0 * hours + 2.0)


def test_a_session_across_the_evening_peak() -> None:
    t = tariff(**NIGHT)
    tz = ZoneInfo(BRUSSELS)
    start = datetime(2026, 2, 2, 16, 0, tzinfo=tz).timestamp()  # 16:00-19:00 local, 30 kWh
    cost = t.cost(start, start + 3 * 3600, 30_000)
    assert close(cost, 1.0 + 10 * 0.40 + 20 * 0.60 + 3 * 0.50)


def test_which_tariff_prices_a_session() -> None:
    default = tariff()
    residents = Tariff.from_config(TariffConfig(name="residents", card_groups=["residents"]))
    visitors = Tariff.from_config(TariffConfig(name="visitors", charger_groups=["visitors"]))
    site = Tariffs([residents, visitors, default])
    assert site.for_session({"residents"}, {"visitors"}) is residents
    assert site.for_session({"staff"}, {"visitors"}) is visitors
    assert site.for_session(set(), set()) is default
    assert Tariffs([residents]).for_session(set(), set()) is None
    with pytest.raises(TariffError, match="several currencies"):
        Tariffs([default, Tariff.from_config(TariffConfig(name="chf", currency="CHF"))])


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        (
            {"bands": [{"start": "22:00", "end": "06:00"}, {"start": "05:00", "end": "07:00"}]},
            "overlap",
        ),
        ({"bands": [{"start": "24:00", "end": "06:00"}]}, "start"),
        ({"bands": [{"start": "06:00", "end": "06:00"}]}, "empty"),
        ({"per_kwh": -1}, "per_kwh"),
    ],
)
def test_bad_tariffs_are_refused_with_the_reason(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        TariffConfig.model_validate({"name": "t", **fields})


def test_a_site_has_one_currency() -> None:
    with pytest.raises(ConfigError, match="several currencies"):
        parse_config({"tariffs": [{"name": "a"}, {"name": "b", "currency": "CHF"}]})
