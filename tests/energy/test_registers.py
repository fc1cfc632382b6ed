"""Meter profiles as data: every shipped file loads and round-trips, and raw images decode.

Known register images are written out as the 16-bit words a meter sends, worked out by hand
from the datasheet encodings, so a word-order or scaling mistake in the decoder cannot hide
behind a symmetric encode/decode bug.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from edgegw.energy.registers import (
    MAX_READ_REGISTERS,
    BadReading,
    BlockRead,
    MeterProfile,
    ProfileError,
    Quantity,
    Reading,
    decode,
    encode,
    encode_image,
    load_profile,
    load_profiles,
    parse_profile,
    plan_reads,
    value_to_words,
    words_to_value,
)

METERS_DIR = Path(__file__).resolve().parents[2] / "hardware" / "meters"
PROFILE_FILES = sorted(METERS_DIR.glob("*.toml"))

REQUIRED_PROFILES = {
    "eastron-sdm630",
    "eastron-sdm72dm-v2",
    "carlogavazzi-em24",
    "carlogavazzi-em340",
    "janitza-umg96rm",
    "janitza-b23",
    "abb-b23",
    "siemens-pac2200",
    "schneider-iem3x55",
    "socomec-countis-e2x",
    "generic",
}

PHASE_CURRENTS = (Quantity.CURRENT_L1, Quantity.CURRENT_L2, Quantity.CURRENT_L3)
SINGLE_PHASE_PROFILES = {"eastron-sdm120"}
"""L1 only: the site meter of a single-phase site (``[site] phases = 1``) or a monitor meter;
a three-phase site's meter needs the three phase currents (MeterService refuses it)."""

# A busy site: unbalanced phases, one phase exporting (PV), large energy counters.
KNOWN = Reading(
    voltage_l1_v=230.1,
    voltage_l2_v=229.8,
    voltage_l3_v=231.4,
    current_l1_a=12.345,
    current_l2_a=0.5,
    current_l3_a=31.9,
    power_l1_w=2840.5,
    power_l2_w=-120.25,
    power_l3_w=7300.2,
    power_w=10020.45,
    energy_import_wh=123_456_789.0,
    energy_export_wh=4_567_890.0,
    frequency_hz=50.02,
)


@pytest.fixture(scope="module")
def profiles() -> dict[str, MeterProfile]:
    return load_profiles(METERS_DIR)


def _read_blocks(
    image: dict[int, dict[int, int]], blocks: list[BlockRead]
) -> dict[tuple[int, int], list[int]]:
    """What a client gets for the planned reads from a meter holding ``image``."""
    return {
        b.key: [image.get(b.function_code, {}).get(a, 0) for a in range(b.address, b.end)]
        for b in blocks
    }


def _tolerance(
    profile: MeterProfile,
    quantity: Quantity,
    expected: float,
    encoded: dict[tuple[int, int], list[int]],
) -> float:
    """Half a step of the register's resolution, in the reading's unit."""
    reg = profile.registers[quantity]
    if reg.type == "float32":
        return abs(expected) * 2.0**-22 + 1e-6
    if reg.type == "float64":
        return abs(expected) * 1e-12 + 1e-9
    exponent = 0
    if reg.scale_factor is not None:
        fc = reg.scale_factor.function_code or reg.function_code or profile.modbus.function_code
        exponent = int(words_to_value(encoded[(fc, reg.scale_factor.address)], "int16"))
    return abs(reg.scale) * 10.0**exponent * reg.si_factor / 2 + abs(expected) * 1e-12 + 1e-9


def _data(**changes: Any) -> dict[str, Any]:
    """A small valid profile as parsed TOML, with top-level keys replaced."""
    data: dict[str, Any] = {
        "format": 1,
        "id": "test-meter",
        "name": "Test meter",
        "products": ["Test meter"],
        "modbus": {"function_code": 4},
        "serial": {
            "unit_id": 1,
            "baudrate": 9600,
            "parity": "N",
            "stopbits": 1,
            "confirmed": True,
        },
        "registers": {
            "voltage_l1": {"address": 0x0000, "type": "float32", "unit": "V"},
            "current_l1": {"address": 0x0006, "type": "float32", "unit": "A"},
        },
    }
    data.update(changes)
    return data


def _registers(**registers: dict[str, Any]) -> dict[str, Any]:
    return _data(registers=registers)


# ------------------------------------------------------------------------------------------
# Every shipped profile
# ------------------------------------------------------------------------------------------


def test_every_required_meter_has_a_profile(profiles: dict[str, MeterProfile]) -> None:
    assert set(profiles) >= REQUIRED_PROFILES


def test_reading_fields_match_quantities() -> None:
    names = {f.name for f in dataclasses.fields(Reading)} - {"invalid"}
    assert names == {q.field_name for q in Quantity}
    assert Quantity.CURRENT_L1.field_name == "current_l1_a"
    assert Quantity.ENERGY_IMPORT.field_name == "energy_import_wh"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_profile_round_trips_through_planned_reads(path: Path) -> None:
    profile = load_profile(path)
    assert profile.id == path.stem
    assert profile.serial is not None or profile.tcp is not None
    # Per-phase load capping of a three-phase site needs the three phase currents; a
    # single-phase meter has L1 only (a single-phase site's meter, or a monitor meter).
    if profile.id in SINGLE_PHASE_PROFILES:
        assert Quantity.CURRENT_L1 in profile.quantities
        assert not {Quantity.CURRENT_L2, Quantity.CURRENT_L3} & set(profile.quantities)
    else:
        assert set(PHASE_CURRENTS) <= set(profile.quantities)

    encoded = encode(profile, KNOWN)
    image = encode_image(profile, KNOWN)
    blocks = plan_reads(profile)
    assert len(blocks) <= 5, blocks
    for block in blocks:
        assert block.count <= profile.modbus.max_read_registers <= MAX_READ_REGISTERS
        assert block.function_code in (3, 4)
    covered = [q for block in blocks for q in block.quantities]
    assert sorted(covered) == sorted(profile.quantities)

    reading = decode(profile, _read_blocks(image, blocks))

    assert reading.invalid == {}
    assert set(reading.values()) == set(profile.quantities)
    for quantity in profile.quantities:
        expected = KNOWN.value(quantity)
        assert expected is not None
        got = reading.value(quantity)
        assert got is not None
        assert got == pytest.approx(
            expected, abs=_tolerance(profile, quantity, expected, encoded)
        ), quantity


# ------------------------------------------------------------------------------------------
# Hand-written register images
# ------------------------------------------------------------------------------------------


def test_sdm630_block_of_float32_big_endian(profiles: dict[str, MeterProfile]) -> None:
    sdm = profiles["eastron-sdm630"]
    words = [
        0x4366, 0x0000,  # 0x0000 V L1 230.0
        0x4367, 0x8000,  # 0x0002 V L2 231.5
        0x4365, 0x0000,  # 0x0004 V L3 229.0
        0x4120, 0x0000,  # 0x0006 I L1 10.0
        0x3F00, 0x0000,  # 0x0008 I L2 0.5
        0x4180, 0x0000,  # 0x000A I L3 16.0
        0x450F, 0xC000,  # 0x000C P L1 2300.0
        0xC2E6, 0x0000,  # 0x000E P L2 -115.0 (exporting)
        0x4566, 0x0000,  # 0x0010 P L3 3680.0
    ]  # fmt: skip
    reading = decode(sdm, {(4, 0x0000): words})

    assert reading.voltages_v == (230.0, 231.5, 229.0)
    assert reading.currents_a == (10.0, 0.5, 16.0)
    assert reading.powers_w == (2300.0, -115.0, 3680.0)
    assert reading.power_w is None  # not in the block, so not decoded


@pytest.mark.parametrize(
    ("meter", "quantity", "words", "expected"),
    [
        # Eastron: float32, most significant word first.
        ("eastron-sdm630", Quantity.VOLTAGE_L1, [0x4366, 0x0000], 230.0),
        ("eastron-sdm630", Quantity.ENERGY_IMPORT, [0x4640, 0xE400], 12_345_000.0),
        # Carlo Gavazzi: INT32 least significant word first, scaled.
        ("carlogavazzi-em24", Quantity.VOLTAGE_L1, [0x08FC, 0x0000], 230.0),
        ("carlogavazzi-em24", Quantity.CURRENT_L1, [0x3039, 0x0000], 12.345),
        ("carlogavazzi-em24", Quantity.POWER_L1, [0xCFC7, 0xFFFF], -1234.5),
        ("carlogavazzi-em24", Quantity.FREQUENCY, [0x01F4], 50.0),
        ("carlogavazzi-em24", Quantity.ENERGY_IMPORT, [0xE240, 0x0001], 12_345_600.0),
        ("carlogavazzi-em340", Quantity.FREQUENCY, [0x01F5], 50.1),
        # ABB: uint16 / uint32 / int32 / uint64, most significant word first, scaled.
        ("abb-b23", Quantity.VOLTAGE_L2, [0x0000, 0x08FC], 230.0),
        ("abb-b23", Quantity.CURRENT_L1, [0x0000, 0x0640], 16.0),
        ("abb-b23", Quantity.POWER, [0xFFFF, 0x3CB0], -500.0),
        ("abb-b23", Quantity.FREQUENCY, [0x1388], 50.0),
        ("abb-b23", Quantity.ENERGY_IMPORT, [0x0000, 0x0000, 0x0001, 0xE240], 1_234_560.0),
        # Janitza: float32 in Wh.
        ("janitza-umg96rm", Quantity.ENERGY_IMPORT, [0x4B3C, 0x614E], 12_345_678.0),
        # Schneider: float32 in kW, INT64 in Wh.
        ("schneider-iem3x55", Quantity.POWER_L1, [0x3FC0, 0x0000], 1500.0),
        ("schneider-iem3x55", Quantity.ENERGY_IMPORT, [0x0000, 0x0000, 0x0000, 0x3039], 12345.0),
        # Siemens: float64 in Wh.
        ("siemens-pac2200", Quantity.ENERGY_IMPORT, [0x408F, 0x4400, 0x0000, 0x0000], 1000.5),
        # Socomec: S32 in 1/100 kW, U32 in 1/1000 Hz.
        ("socomec-countis-e2x", Quantity.POWER, [0xFFFF, 0xFF85], -1230.0),
        ("socomec-countis-e2x", Quantity.FREQUENCY, [0x0000, 0xC364], 50.02),
    ],
)
def test_known_register_image(
    profiles: dict[str, MeterProfile],
    meter: str,
    quantity: Quantity,
    words: list[int],
    expected: float,
) -> None:
    profile = profiles[meter]
    reg = profile.registers[quantity]
    fc = reg.function_code or profile.modbus.function_code

    reading = decode(profile, {(fc, reg.address): words}, [quantity])

    assert reading.value(quantity) == pytest.approx(expected, rel=1e-12)
    # and the encoder produces exactly these words
    assert encode(profile, reading)[(fc, reg.address)] == words


def test_byte_order_little_swaps_bytes_inside_each_register() -> None:
    profile = parse_profile(
        _registers(
            voltage_l1={"address": 0, "type": "float32", "unit": "V", "byte_order": "little"},
            current_l1={"address": 2, "type": "int32", "unit": "A", "scale": 0.001,
                        "word_order": "little", "byte_order": "little"},
        )
    )  # fmt: skip
    reading = decode(profile, {(4, 0): [0x6643, 0x0000, 0x3930, 0x0000]})

    assert reading.voltage_l1_v == 230.0
    assert reading.current_l1_a == 12.345


def test_negate_turns_a_meter_counting_export_positive_into_import_positive() -> None:
    profile = parse_profile(
        _registers(power={"address": 0, "type": "int32", "unit": "W", "negate": True})
    )
    assert decode(profile, {(4, 0): [0xFFFF, 0xFC18]}).power_w == 1000.0
    assert encode(profile, Reading(power_w=-250.0)) == {(4, 0): [0x0000, 0x00FA]}


def test_scale_factor_register_is_applied_and_chosen_on_encode(
    profiles: dict[str, MeterProfile],
) -> None:
    generic = profiles["generic"]
    # I1 = 1234 with exponent -2 (0xFFFE) -> 12.34 A; I2 = 50 -> 0.5 A
    reading = decode(generic, {(3, 0x0004): [1234, 50, 0, 0xFFFE]}, PHASE_CURRENTS)
    assert reading.currents_a == (12.34, 0.5, 0.0)

    encoded = encode(generic, Reading(current_l1_a=12.345, current_l2_a=0.5, current_l3_a=31.9))
    assert encoded[(3, 0x0007)] == [0xFFFD]  # the finest exponent that fits all three: -3
    assert encoded[(3, 0x0004)] == [12345]


# ------------------------------------------------------------------------------------------
# Values that must never be passed on
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "words", [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]], ids=["nan", "inf", "-inf"]
)
def test_non_finite_float_is_a_bad_reading(
    profiles: dict[str, MeterProfile], words: list[int]
) -> None:
    sdm = profiles["eastron-sdm630"]
    block = {(4, 0x0000): [*words, 0x4366, 0x0000]}

    with pytest.raises(BadReading, match=r"voltage_l1: not a finite number") as caught:
        decode(sdm, block)
    assert set(caught.value.problems) == {Quantity.VOLTAGE_L1}
    assert caught.value.partial is not None
    assert caught.value.partial.voltage_l2_v == 230.0

    lenient = decode(sdm, block, strict=False)
    assert lenient.voltage_l1_v is None
    assert lenient.voltage_l2_v == 230.0
    assert "not a finite number" in lenient.invalid[Quantity.VOLTAGE_L1]


def test_abb_not_available_marker_is_a_bad_reading(profiles: dict[str, MeterProfile]) -> None:
    abb = profiles["abb-b23"]
    words = [0] * 45
    words[0:2] = [0xFFFF, 0xFFFF]  # V L1-N: "not available"
    words[0x14:0x16] = [0x7FFF, 0xFFFF]  # P total: "not available" (signed)
    words[0x0C:0x0E] = [0x0000, 0x0640]  # I L1 16.00 A

    with pytest.raises(BadReading, match="not available") as caught:
        decode(abb, {(3, 0x5B00): words})
    assert set(caught.value.problems) == {Quantity.VOLTAGE_L1, Quantity.POWER}

    lenient = decode(abb, {(3, 0x5B00): words}, strict=False)
    assert lenient.voltage_l1_v is None
    assert lenient.power_w is None
    assert lenient.current_l1_a == 16.0
    with pytest.raises(BadReading, match="power"):
        lenient.require(Quantity.CURRENT_L1, Quantity.POWER)
    lenient.require(*PHASE_CURRENTS)


def test_quantity_asked_for_but_not_read_is_a_bad_reading(
    profiles: dict[str, MeterProfile],
) -> None:
    sdm = profiles["eastron-sdm630"]
    with pytest.raises(BadReading, match=r"power: not read: no block covers FC4 0x0034"):
        decode(sdm, {(4, 0x0000): [0x4366, 0x0000]}, [Quantity.VOLTAGE_L1, Quantity.POWER])
    with pytest.raises(BadReading, match="current_l1: not read"):
        Reading(voltage_l1_v=230.0).require(Quantity.CURRENT_L1)


def test_generic_scale_factor_out_of_range_is_a_bad_reading(
    profiles: dict[str, MeterProfile],
) -> None:
    generic = profiles["generic"]
    with pytest.raises(BadReading, match="implausible scale factor"):
        decode(generic, {(3, 0x0004): [1, 2, 3, 0x8000]}, [Quantity.CURRENT_L1])
    with pytest.raises(BadReading, match="scale-factor register FC3 0x0007 was not read"):
        decode(generic, {(3, 0x0004): [1]}, [Quantity.CURRENT_L1])


def test_words_that_are_not_16_bit_are_refused(profiles: dict[str, MeterProfile]) -> None:
    with pytest.raises(ValueError, match="not a 16-bit value"):
        decode(profiles["eastron-sdm630"], {(4, 0): [0x4366, 0x10000]})


def test_encode_refuses_a_value_the_register_cannot_hold(
    profiles: dict[str, MeterProfile],
) -> None:
    with pytest.raises(ValueError, match=r"current_l1 = -1\.0: .*outside the uint32 range"):
        encode(profiles["abb-b23"], Reading(current_l1_a=-1.0))
    with pytest.raises(ValueError, match="does not fit a float32"):
        value_to_words(1e39, "float32")


def test_encode_writes_the_not_available_marker_for_missing_values(
    profiles: dict[str, MeterProfile],
) -> None:
    abb = profiles["abb-b23"]
    encoded = encode(abb, Reading(current_l1_a=6.0))
    assert encoded[(3, 0x5B00)] == [0xFFFF, 0xFFFF]
    assert encoded[(3, 0x5B14)] == [0x7FFF, 0xFFFF]
    assert encoded[(3, 0x5B0C)] == [0x0000, 0x0258]


# ------------------------------------------------------------------------------------------
# Malformed profiles
# ------------------------------------------------------------------------------------------


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ProfileError) as caught:
        parse_profile(data, source="meter.toml")
    return str(caught.value)


def test_unknown_data_type_names_the_key_and_the_allowed_types() -> None:
    message = _error(_registers(voltage_l1={"address": 0, "type": "float16", "unit": "V"}))
    assert "meter.toml: registers.voltage_l1.type:" in message
    assert "'float32'" in message
    assert "float16" in message


def test_unknown_keys_are_rejected_with_their_path() -> None:
    message = _error(_registers(voltage_l1={"adress": 0, "type": "float32", "unit": "V"}))
    assert "registers.voltage_l1.adress: unknown key; allowed: address," in message
    assert "registers.voltage_l1.address: required key is missing" in message

    message = _error(_data(modbus={"function_code": 4, "word_oder": "big"}))
    assert "modbus.word_oder: unknown key; allowed: function_code, word_order" in message

    assert "colour: unknown key; allowed: format, id," in _error(_data(colour="red"))

    message = _error(_registers(current_l4={"address": 0, "type": "float32", "unit": "A"}))
    assert "registers.current_l4: unknown quantity; allowed: voltage_l1" in message


def test_overlapping_registers_are_rejected() -> None:
    message = _error(
        _registers(
            voltage_l1={"address": 0x0000, "type": "float32", "unit": "V"},
            current_l1={"address": 0x0001, "type": "float32", "unit": "A"},
        )
    )
    assert "registers.current_l1 (FC4 0x0001..0x0002) overlaps registers.voltage_l1" in message


def test_same_address_with_another_function_code_is_not_an_overlap() -> None:
    profile = parse_profile(
        _registers(
            voltage_l1={"address": 0, "type": "float32", "unit": "V"},
            current_l1={"address": 0, "type": "float32", "unit": "A", "function_code": 3},
        )
    )
    assert [b.key for b in plan_reads(profile)] == [(3, 0), (4, 0)]


def test_scale_factor_register_must_not_overlap_a_value() -> None:
    message = _error(
        _registers(
            current_l1={"address": 0, "type": "int16", "unit": "A",
                        "scale_factor": {"address": 1}},
            voltage_l1={"address": 1, "type": "uint16", "unit": "V"},
        )
    )  # fmt: skip
    assert "overlaps" in message
    assert "scale_factor" in message


def test_inconsistent_register_values_are_rejected() -> None:
    cases: dict[str, dict[str, dict[str, Any]]] = {
        "registers.power.unit: 'kWh' measures Wh, power needs one of W, kW": {
            "power": {"address": 0, "type": "float32", "unit": "kWh"}
        },
        "registers.power.unit: unknown unit 'kw'": {
            "power": {"address": 0, "type": "float32", "unit": "kw"}
        },
        "not_available applies to integer types only": {
            "power": {"address": 0, "type": "float32", "unit": "W", "not_available": [0]}
        },
        "outside the int32 range": {
            "power": {"address": 0, "type": "int32", "unit": "W", "not_available": [0xFFFFFFFF]}
        },
        "registers.power.scale: scale must not be 0": {
            "power": {"address": 0, "type": "int32", "unit": "W", "scale": 0}
        },
        "registers.power.address: Input should be a valid integer": {
            "power": {"address": "0x10", "type": "int32", "unit": "W"}
        },
        "runs past the last address 0xFFFF": {
            "power": {"address": 0xFFFF, "type": "int32", "unit": "W"}
        },
    }
    for expected, registers in cases.items():
        assert expected in _error(_registers(**registers)), expected


def test_profile_needs_serial_or_tcp_defaults() -> None:
    assert "give [serial] and/or [tcp] defaults" in _error(_data(serial=None))


def test_broken_toml_is_reported_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('format = 1\nid = "a"\nid = "b"\n', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"broken\.toml: not valid TOML"):
        load_profile(path)


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    text = (METERS_DIR / "eastron-sdm630.toml").read_text(encoding="utf-8")
    (tmp_path / "eastron-sdm630.toml").write_text(text, encoding="utf-8")
    (tmp_path / "my-copy.toml").write_text(text, encoding="utf-8")

    with pytest.raises(ProfileError) as caught:
        load_profiles(tmp_path)
    message = str(caught.value)
    assert "my-copy.toml: id 'eastron-sdm630' is already used by" in message
    assert "eastron-sdm630.toml" in message.split("already used by")[1]


def test_every_broken_file_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text("format = 2\n", encoding="utf-8")
    (tmp_path / "two.toml").write_text("not toml at all", encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profiles(tmp_path)
    files = {problem.split(":")[0] for problem in caught.value.problems}
    assert files == {str(tmp_path / "one.toml"), str(tmp_path / "two.toml")}


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not a directory"):
        load_profiles(tmp_path / "nope")


# ------------------------------------------------------------------------------------------
# Block planning
# ------------------------------------------------------------------------------------------


def test_sdm630_currents_voltages_and_power_in_one_read(
    profiles: dict[str, MeterProfile],
) -> None:
    sdm = profiles["eastron-sdm630"]
    wanted = [
        *PHASE_CURRENTS,
        Quantity.VOLTAGE_L1, Quantity.VOLTAGE_L2, Quantity.VOLTAGE_L3,
        Quantity.POWER_L1, Quantity.POWER_L2, Quantity.POWER_L3, Quantity.POWER,
    ]  # fmt: skip
    (block,) = plan_reads(sdm, wanted)
    assert (block.function_code, block.address, block.count) == (4, 0x0000, 0x36)
    assert set(block.quantities) == set(wanted)
    # Everything the meter offers takes two requests within Eastron's 30-parameter limit.
    everything = plan_reads(sdm)
    assert [(b.address, b.count) for b in everything] == [(0x0000, 0x36), (0x0046, 6)]
    assert all(b.count <= 60 for b in everything)


def test_max_gap_zero_reads_only_listed_registers(profiles: dict[str, MeterProfile]) -> None:
    iem = profiles["schneider-iem3x55"]
    blocks = plan_reads(iem)
    assert [(b.address, b.count) for b in blocks] == [
        (0x0BB7, 6),  # currents
        (0x0BD3, 6),  # voltages
        (0x0BED, 8),  # phase powers + total, contiguous
        (0x0C25, 2),  # frequency
        (0x0C83, 8),  # import + export, contiguous
    ]
    assert sum(b.count for b in blocks) == sum(r.words for r in iem.registers.values())


def test_max_read_registers_splits_a_long_range() -> None:
    profile = parse_profile(
        _data(
            modbus={"function_code": 4, "max_read_registers": 100, "max_gap": 124},
            registers={
                "voltage_l1": {"address": 0x00, "type": "float32", "unit": "V"},
                "voltage_l2": {"address": 0x40, "type": "float32", "unit": "V"},
                "voltage_l3": {"address": 0x80, "type": "float32", "unit": "V"},
            },
        )
    )
    blocks = plan_reads(profile)
    assert [(b.address, b.count) for b in blocks] == [(0x00, 0x42), (0x80, 2)]
    assert all(b.count <= 100 for b in blocks)


def test_plan_reads_only_what_is_asked_and_brings_the_scale_factor(
    profiles: dict[str, MeterProfile],
) -> None:
    generic = profiles["generic"]
    (block,) = plan_reads(generic, [Quantity.CURRENT_L1])
    assert (block.function_code, block.address, block.count) == (3, 0x0004, 4)
    assert block.quantities == (Quantity.CURRENT_L1,)
    # the FC4 energy register is a separate request
    assert [b.function_code for b in plan_reads(generic)] == [3, 4]


def test_plan_for_a_quantity_the_meter_lacks_is_an_error(
    profiles: dict[str, MeterProfile],
) -> None:
    with pytest.raises(ProfileError, match=r"no register for energy_export \(it offers: "):
        plan_reads(profiles["carlogavazzi-em24"], [Quantity.ENERGY_EXPORT])


def test_raw_codec_is_symmetric_for_every_type() -> None:
    cases: list[tuple[Any, float]] = [
        ("int16", -2), ("uint16", 65535), ("int32", -123456), ("uint32", 4_000_000_000),
        ("int64", -(2**40)), ("uint64", 2**63), ("float32", 230.5), ("float64", 1e12 + 0.5),
    ]  # fmt: skip
    for data_type, value in cases:
        for word_order in ("big", "little"):
            for byte_order in ("big", "little"):
                words = value_to_words(value, data_type, word_order, byte_order)
                back = words_to_value(words, data_type, word_order, byte_order)
                assert back == value, (data_type, word_order, byte_order)
    assert math.isnan(words_to_value([0x7FC0, 0x0000], "float32"))
    # float32 comes back as the decimal the meter meant, not 230.10000610351562
    assert words_to_value(value_to_words(230.1, "float32"), "float32") == 230.1
