"""More meter families read by the daemon's poller from independent register images.

Same method as ``test_meter_images.py`` (whose codec, serving fixture and poller helper this
file reuses): each image is written here by hand from a source that is not edgegw's TOML and
served by a real pymodbus server with the vendor's limits; the daemon's
:class:`~edgegw.energy.meters.MeterPoller` must read the true values.

- Eastron SDM120/SDM230 (single phase), from volkszaehler mbmd ``sdm120.go``/``sdm230.go``
  and nmakel ``sdm_modbus`` (``sdm.py``, classes SDM120 and SDM230).
- SolarEdge meter 1 through the inverter (SunSpec model 203, integers with scale-factor
  registers), from nmakel ``solaredge_modbus`` (class Meter) and the SunSpec point names; and
  the words a real SolarEdge inverter sent (evcc issue #15445 trace), replayed unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pytest

from edgegw.config import Config
from edgegw.energy.meters import MeterConfigError, MeterService, find_profile
from edgegw.energy.registers import Quantity
from tests.energy.test_meter_images import (
    ENCODERS,
    Family,
    Serve,
    _poller,
    image_of,
    serve,  # noqa: F401  (the fixture, used by name)
)

# ------------------------------------------------------------------------------------------
# Eastron SDM120 / SDM230: one phase
# ------------------------------------------------------------------------------------------

SINGLE_IMPORTING: Final = {
    "voltage_l1_v": 230.1,
    "current_l1_a": 10.0,
    "power_w": 2300.0,
    "frequency_hz": 50.0,
    "energy_import_wh": 4_321_500.0,
    "energy_export_wh": 12_300.0,
}
SINGLE_EXPORTING: Final = {
    **SINGLE_IMPORTING,
    "current_l1_a": 4.0,
    "power_w": -920.0,
    "frequency_hz": 49.9,
    "energy_export_wh": 12_400.0,
}
SINGLE: Final = {"importing": SINGLE_IMPORTING, "exporting": SINGLE_EXPORTING}

SDM120: Final = Family(
    "eastron-sdm120",
    4,
    (
        (0x0000, "f32", "voltage_l1_v", 1),  # 30001 Line to neutral volts
        (0x0006, "f32", "current_l1_a", 1),  # 30007 Current
        (0x000C, "f32", "power_w", 1),  # 30013 Active power
        (0x0046, "f32", "frequency_hz", 1),  # 30071 Frequency
        (0x0048, "f32", "energy_import_wh", 1000),  # 30073 Import active energy, kWh
        (0x004A, "f32", "energy_export_wh", 1000),  # 30075 Export active energy, kWh
    ),
    "mbmd meters/rs485/sdm120.go, sdm230.go; nmakel sdm_modbus sdm.py SDM120/SDM230",
    max_read_registers=50,  # not documented: the default
)


@pytest.mark.parametrize("scenario", SINGLE)
async def test_the_sdm120_family_reads_true(scenario: str, serve: Serve) -> None:  # noqa: F811
    profile = find_profile(SDM120.profile)
    values = SINGLE[scenario]
    assert {q.field_name for q in profile.quantities} == {name for _, _, name, _ in SDM120.rows}
    sim, bus = await serve(
        profile, image_of(SDM120, values), unit_id=1, max_read_registers=SDM120.max_read_registers
    )
    poller = _poller(SDM120, profile, bus)
    try:
        sample = await poller.poll_once()
        assert sample is not None, poller.health.last_error
        for quantity in profile.quantities:
            assert sample.reading.value(quantity) == pytest.approx(values[quantity.field_name])
        assert sample.reading.currents_a == (values["current_l1_a"], None, None)
        power = sample.reading.power_w
        assert power is not None and (power > 0) == (scenario == "importing")
        assert sim.requests == len(poller.blocks) == 2  # 0x0000+14 and 0x0046+6
    finally:
        await poller.bus.close()


def test_a_single_phase_meter_is_refused_as_the_site_meter() -> None:
    config = Config.model_validate(
        {
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": "eastron-sdm120", "role": "site"}],
        }
    )
    with pytest.raises(MeterConfigError, match="current_l2"):
        MeterService(config)


def test_a_single_phase_meter_is_accepted_as_a_monitor() -> None:
    config = Config.model_validate(
        {
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [
                {"name": "site", "profile": "eastron-sdm630", "unit_id": 1},
                {"name": "charger-1", "profile": "eastron-sdm120", "unit_id": 2, "role": "monitor"},
            ],
        }
    )
    service = MeterService(config)
    assert service.site_meter is not None and service.site_meter.name == "site"
    assert service.pollers["charger-1"].profile.id == "eastron-sdm120"


# ------------------------------------------------------------------------------------------
# SolarEdge meter 1 through the inverter: SunSpec model 203 with scale factors
# ------------------------------------------------------------------------------------------

SOLAREDGE: Final = Family(
    "solaredge-se-mtr-3y",
    3,
    (),  # SunSpec values need their scale factors: built by sunspec_image below
    "nmakel solaredge_modbus Meter (SunSpec model 203, meter 1); evcc solaredge-inverter.yaml",
    max_read_registers=105,  # a real inverter answered 105 registers at once (evcc #15445)
    unit_id=1,
)

M203: Final = 0x9CFE
"""First data register of meter 1's model 203 (0x9CFC holds the DID 203, 0x9CFD its length)."""


def _s16(value: int) -> int:
    assert -32768 <= value <= 32767
    return value & 0xFFFF


def sunspec_image(
    *,
    amps: tuple[float, float, float],
    volts: tuple[float, float, float],
    hz: float,
    watts_export_positive: tuple[float, float, float],
    export_wh: int,
    import_wh: int,
    sf: Mapping[str, int],
) -> dict[int, dict[int, int]]:
    """Model 203 as SolarEdge lays it out (offsets from nmakel's Meter class), each group of
    points written as raw = value / 10^SF, with the meter's own sign (export positive)."""

    def raw(value: float, exponent: int) -> int:
        return _s16(round(value / 10**exponent))

    words = {M203 - 2: 203, M203 - 1: 105}  # C_SunSpec_DID, C_SunSpec_Length
    words[M203 + 0] = raw(sum(amps), sf["A"])  # A (total)
    for i, amp in enumerate(amps):
        words[M203 + 1 + i] = raw(amp, sf["A"])  # AphA..AphC
    words[M203 + 4] = _s16(sf["A"])  # A_SF
    words[M203 + 5] = raw(sum(volts) / 3, sf["V"])  # PhV (average)
    for i, volt in enumerate(volts):
        words[M203 + 6 + i] = raw(volt, sf["V"])  # PhVphA..PhVphC
    words[M203 + 13] = _s16(sf["V"])  # V_SF
    words[M203 + 14] = raw(hz, sf["Hz"])  # Hz
    words[M203 + 15] = _s16(sf["Hz"])  # Hz_SF
    words[M203 + 16] = raw(sum(watts_export_positive), sf["W"])  # W
    for i, watt in enumerate(watts_export_positive):
        words[M203 + 17 + i] = raw(watt, sf["W"])  # WphA..WphC
    words[M203 + 20] = _s16(sf["W"])  # W_SF
    for offset, wh in ((36, export_wh), (44, import_wh)):  # TotWhExp, TotWhImp (acc32)
        counted = wh // 10 ** sf["Wh"]
        words[M203 + offset] = counted >> 16
        words[M203 + offset + 1] = counted & 0xFFFF
    words[M203 + 52] = _s16(sf["Wh"])  # TotWh_SF
    return {3: words}


def test_the_sunspec_image_writes_the_words_the_standard_shows() -> None:
    image = sunspec_image(
        amps=(10.0, 0, 0),
        volts=(230.1, 0, 0),
        hz=50.0,
        watts_export_positive=(-2300.0, 0, 0),
        export_wh=70_000,
        import_wh=0,
        sf={"A": -2, "V": -1, "Hz": -2, "W": 0, "Wh": 0},
    )[3]
    assert image[M203 + 1] == 1000 and image[M203 + 4] == 0xFFFE  # 10.00 A at 10^-2
    assert image[M203 + 17] == 0xF704  # -2300 W as int16
    assert (image[M203 + 36], image[M203 + 37]) == (0x0001, 0x1170)  # 70000 Wh


SE_SCENARIOS: Final = {
    # The site buys 7010 W: the meter (export positive) shows -7010 W.
    "importing": (
        {"A": -2, "V": -1, "Hz": -2, "W": 0, "Wh": 0},
        (10.0, 12.5, 8.0),
        (2300.0, 2870.0, 1840.0),
    ),
    # The site sells 2640 W, with coarser scale factors (W in 10 W, energy in 10 Wh): the
    # gateway must apply whatever exponent the inverter reports.
    "exporting": (
        {"A": -1, "V": -1, "Hz": -1, "W": 1, "Wh": 1},
        (4.0, 4.5, 3.0),
        (-920.0, -1030.0, -690.0),
    ),
}


@pytest.mark.parametrize("scenario", SE_SCENARIOS)
async def test_the_solaredge_meter_reads_true_through_its_scale_factors(
    scenario: str,
    serve: Serve,  # noqa: F811
) -> None:
    sf, amps, site_watts = SE_SCENARIOS[scenario]
    volts = (230.1, 229.8, 231.0)
    image = sunspec_image(
        amps=amps,
        volts=volts,
        hz=50.0 if scenario == "importing" else 49.9,
        watts_export_positive=(-site_watts[0], -site_watts[1], -site_watts[2]),
        export_wh=790_300,
        import_wh=12_345_600,
        sf=sf,
    )
    profile = find_profile(SOLAREDGE.profile)
    sim, bus = await serve(
        profile, image, unit_id=1, max_read_registers=SOLAREDGE.max_read_registers
    )
    poller = _poller(SOLAREDGE, profile, bus)
    try:
        sample = await poller.poll_once()
        assert sample is not None, poller.health.last_error
        reading = sample.reading
        assert reading.currents_a == pytest.approx(amps)
        assert reading.voltages_v == pytest.approx(volts)
        assert reading.powers_w == pytest.approx(site_watts)  # import positive, per phase
        assert reading.power_w == pytest.approx(sum(site_watts))
        assert (reading.power_w is not None and reading.power_w > 0) == (scenario == "importing")
        assert reading.frequency_hz == pytest.approx(50.0 if scenario == "importing" else 49.9)
        assert reading.energy_import_wh == 12_345_600
        assert reading.energy_export_wh == 790_300
        assert sim.requests == 1  # the whole map, scale factors included, in one request
    finally:
        await poller.bus.close()


# The 105 registers a SolarEdge inverter answered for "send ... 01 03 9c fe 00 69" (meter 1,
# model 203, option "Export+Import"), copied from the evcc issue #15445 TCP trace.
EVCC_15445_TRACE: Final = bytes.fromhex(
    "00 66 00 2f 00 08 00 2e ff ff 5b 98 5b 98 5c d3 5a 6c 00 00 00 00 00 00 "
    "00 00 ff fe 13 87 ff fe ff a5 04 08 ff 85 fc 18 00 00 01 dc 04 1c 00 94 "
    "03 f8 00 00 fe 2d ff 31 ff af ff 4e 00 00 08 1c db 02 19 50 24 03 ff fe "
    "01 44 84 02 01 5e 60 52 00 00 00 00 00 00 00 00 01 14 08 20 00 28 f5 e8 "
    "00 53 b6 22 00 b1 38 65 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 80 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 80 00 00 00 00 00 "
)


def test_the_trace_is_the_105_registers_it_claims() -> None:
    assert len(EVCC_15445_TRACE) == 2 * 105


async def test_a_real_solaredge_answer_reads_as_the_meter_meant_it(serve: Serve) -> None:  # noqa: F811
    """The words of a real inverter: A_SF -1, V_SF -2, Hz_SF -2, W_SF 0, TotWh_SF 0; total
    power -91 W (the meter's sign: the site imports 91 W), phases +1032, -123, -1000 W."""
    words = [int.from_bytes(EVCC_15445_TRACE[i : i + 2], "big") for i in range(0, 210, 2)]
    image = {3: {M203 + i: word for i, word in enumerate(words)}}
    profile = find_profile(SOLAREDGE.profile)
    sim, bus = await serve(profile, image, unit_id=1, max_read_registers=105)
    poller = _poller(SOLAREDGE, profile, bus)
    try:
        sample = await poller.poll_once()
        assert sample is not None, poller.health.last_error
        reading = sample.reading
        assert reading.currents_a == pytest.approx((4.7, 0.8, 4.6))
        assert reading.voltages_v == pytest.approx((234.48, 237.63, 231.48))
        assert reading.frequency_hz == pytest.approx(49.99)
        assert reading.power_w == 91.0
        assert reading.powers_w == (-1032.0, 123.0, 1000.0)
        assert reading.energy_export_wh == 0x01448402
        assert reading.energy_import_wh == 0x01140820
        assert reading.value(Quantity.POWER) == sum(p for p in reading.powers_w if p is not None)
        assert sim.requests == 1
    finally:
        await poller.bus.close()


async def test_a_scale_factor_the_meter_does_not_implement_is_no_reading(
    serve: Serve,  # noqa: F811
) -> None:
    """SunSpec's "not implemented" scale factor (0x8000) must not pass as 10^-32768."""
    sf = {"A": -2, "V": -1, "Hz": -2, "W": 0, "Wh": 0}
    image = sunspec_image(
        amps=(10.0, 12.5, 8.0),
        volts=(230.1, 229.8, 231.0),
        hz=50.0,
        watts_export_positive=(-2300.0, -2870.0, -1840.0),
        export_wh=1,
        import_wh=2,
        sf=sf,
    )
    image[3][M203 + 4] = 0x8000  # A_SF not implemented
    profile = find_profile(SOLAREDGE.profile)
    _, bus = await serve(profile, image, unit_id=1, max_read_registers=105)
    poller = _poller(SOLAREDGE, profile, bus)
    try:
        assert await poller.poll_once() is None
        assert "scale factor" in (poller.health.last_error or "")
    finally:
        await poller.bus.close()


def test_the_test_codec_is_the_shared_one() -> None:
    assert ENCODERS["f32"](230.0) == [0x4366, 0x0000]
