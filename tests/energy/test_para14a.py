"""§14a EnWG minimum power for dimmed chargers (edgegw.energy.para14a)."""

from __future__ import annotations

import itertools

import pytest

from edgegw.energy import para14a


def test_one_charger_keeps_4_2_kw() -> None:
    assert para14a.minimum_power_kw(1) == pytest.approx(4.2)
    # 4200 W / (3 x 230 V) = 6.0869… A, rounded down
    assert para14a.limit_a(1) == 6.08
    assert para14a.limit_a(1, phases=1) == 18.26


def test_two_chargers_the_published_example() -> None:
    # BK6-22-300 example quoted in Tinkerforge/esp32-firmware #407: 7.56 kW for two
    assert para14a.minimum_power_kw(2) == pytest.approx(7.56)


@pytest.mark.parametrize(
    ("n", "factor"),
    [
        (2, 0.8),
        (3, 0.75),
        (4, 0.7),
        (5, 0.65),
        (6, 0.6),
        (7, 0.55),
        (8, 0.5),
        (9, 0.45),
        (40, 0.45),
    ],
)
def test_the_simultaneity_factor_table(n: int, factor: float) -> None:
    assert para14a.simultaneity_factor(n) == factor
    assert para14a.minimum_power_kw(n) == pytest.approx(4.2 + (n - 1) * factor * 4.2)


def test_the_minimum_grows_with_every_charger() -> None:
    powers = [para14a.minimum_power_kw(n) for n in range(1, 60)]
    assert all(b > a for a, b in itertools.pairwise(powers))


def test_the_limit_never_grants_more_than_the_minimum() -> None:
    for n in range(1, 50):
        amps = para14a.limit_a(n)
        assert para14a.granted_kw(amps) <= para14a.minimum_power_kw(n) + 1e-9
        assert para14a.granted_kw(amps + 0.01) > para14a.minimum_power_kw(n)


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        para14a.minimum_power_kw(0)
    with pytest.raises(ValueError):
        para14a.limit_a(2, phases=2)
    with pytest.raises(ValueError):
        para14a.limit_a(2, voltage_v=0)
