"""The pure codec: the words of planned blocks decoded into a :class:`Reading`, and a reading
encoded back into registers for the simulated meter and the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from edgegw.energy.blockplan import _wanted
from edgegw.energy.meterprofile import (
    _MAX_SCALE_EXPONENT,
    MeterProfile,
    Quantity,
    _resolve,
    _Resolved,
    _Span,
)
from edgegw.energy.meterreading import BadReading, Reading
from edgegw.energy.registerwords import _TYPES, _int_range, value_to_words, words_to_value


class _Blocks:
    """Looks up registers in the blocks a client read."""

    def __init__(self, blocks: Mapping[tuple[int, int], Sequence[int]]) -> None:
        self._blocks: list[tuple[int, int, Sequence[int]]] = []
        for (fc, start), words in blocks.items():
            for offset, word in enumerate(words):
                if not isinstance(word, int) or not 0 <= word <= 0xFFFF:
                    raise ValueError(
                        f"block FC{fc} {start:#06x}: register {start + offset:#06x} holds "
                        f"{word!r}, not a 16-bit value"
                    )
            self._blocks.append((fc, start, words))

    def take(self, fc: int, address: int, count: int) -> list[int] | None:
        for block_fc, start, words in self._blocks:
            if block_fc == fc and start <= address and address + count <= start + len(words):
                return list(words[address - start : address - start + count])
        return None


def _exact_divisor(scale: float) -> int | None:
    """For scales like 0.1 or 0.001, the integer to divide by instead (2300 / 10 == 230.0)."""
    if abs(scale) >= 1:
        return None
    inverse = 1 / scale
    rounded = round(inverse)
    return rounded if abs(inverse - rounded) < 1e-9 * abs(inverse) else None


def _to_unit(raw: float, scale: float, exponent: int) -> float:
    divisor = _exact_divisor(scale)
    value = float(raw) / divisor if divisor else float(raw) * scale
    if exponent > 0:
        value *= 10**exponent
    elif exponent < 0:
        value /= 10**-exponent
    return value


def _from_unit(value: float, scale: float, exponent: int) -> float:
    if exponent > 0:
        value /= 10**exponent
    elif exponent < 0:
        value *= 10**-exponent
    divisor = _exact_divisor(scale)
    return value * divisor if divisor else value / scale


def _hex(words: Sequence[int]) -> str:
    return " ".join(f"0x{word:04X}" for word in words)


def decode(
    profile: MeterProfile,
    blocks: Mapping[tuple[int, int], Sequence[int]],
    quantities: Iterable[Quantity] | None = None,
    *,
    strict: bool = True,
) -> Reading:
    """Turn the words of block reads, keyed ``(function_code, start)``, into a reading.

    With ``quantities`` given, each must be covered by the blocks; without, every quantity
    the blocks cover is decoded. A NaN or infinite float, a "not available" marker or an
    implausible scale factor makes the value invalid: ``strict`` raises :class:`BadReading`,
    otherwise the value is ``None`` and the reason is in :attr:`Reading.invalid`.
    """
    explicit = quantities is not None
    index = _Blocks(blocks)
    values: dict[Quantity, float | None] = {}
    problems: dict[Quantity, str] = {}
    for quantity in _wanted(profile, quantities):
        reg = _resolve(profile, quantity)
        words = index.take(reg.fc, reg.address, reg.words)
        if words is None:
            if explicit:
                where = _Span(reg.fc, reg.address, reg.words, "")
                problems[quantity] = f"not read: no block covers {where}"
            continue
        exponent = 0
        if reg.exponent_at is not None:
            fc, address = reg.exponent_at
            exponent_words = index.take(fc, address, 1)
            if exponent_words is None:
                problems[quantity] = f"scale-factor register FC{fc} {address:#06x} was not read"
                continue
            exponent = int(words_to_value(exponent_words, "int16"))
            if abs(exponent) > _MAX_SCALE_EXPONENT:
                problems[quantity] = f"implausible scale factor 10^{exponent}"
                continue
        raw = words_to_value(words, reg.type, reg.word_order, reg.byte_order)
        if isinstance(raw, float):
            if not math.isfinite(raw):
                problems[quantity] = f"not a finite number ({raw}, raw {_hex(words)})"
                continue
        elif raw in reg.not_available:
            problems[quantity] = f"meter reports 'not available' (raw {_hex(words)})"
            continue
        value = _to_unit(raw, reg.scale, exponent) * reg.si_factor
        values[quantity] = -value if reg.negate and value else value
    reading = Reading.from_values(values, invalid=problems)
    if problems and strict:
        raise BadReading(problems, partial=reading, meter=profile.id)
    return reading


def _raw_for(reg: _Resolved, value: float, exponent: int) -> int | float:
    in_unit = value / reg.si_factor
    raw = _from_unit(-in_unit if reg.negate else in_unit, reg.scale, exponent)
    if _TYPES[reg.type].kind == "float":
        return raw
    if not math.isfinite(raw):
        raise ValueError(f"{reg.quantity.value}: cannot store {value!r} in a {reg.type}")
    return round(raw)


def _fits(reg: _Resolved, value: float, exponent: int) -> bool:
    if _TYPES[reg.type].kind == "float":
        return True
    low, high = _int_range(reg.type)
    return low <= _raw_for(reg, value, exponent) <= high


def _choose_exponents(profile: MeterProfile, reading: Reading) -> dict[tuple[int, int], int]:
    """Per scale-factor register, the finest exponent at which every value sharing it fits."""
    groups: dict[tuple[int, int], list[tuple[_Resolved, float]]] = {}
    for quantity in profile.quantities:
        reg = _resolve(profile, quantity)
        value = reading.value(quantity)
        if reg.exponent_at is not None and value is not None:
            groups.setdefault(reg.exponent_at, []).append((reg, value))
    chosen: dict[tuple[int, int], int] = {}
    for key, members in groups.items():
        for exponent in range(-_MAX_SCALE_EXPONENT, _MAX_SCALE_EXPONENT + 1):
            if all(_fits(reg, value, exponent) for reg, value in members):
                chosen[key] = exponent
                break
        else:
            names = ", ".join(reg.quantity.value for reg, _ in members)
            raise ValueError(f"{names}: no scale factor from 10^-10 to 10^10 fits these values")
    return chosen


def encode(profile: MeterProfile, reading: Reading) -> dict[tuple[int, int], list[int]]:
    """Registers a meter would hold for ``reading``: ``{(function_code, address): words}``.

    The inverse of :func:`decode` (up to the register's resolution), used by the simulated
    meter and the tests. Keys include the function code because input and holding registers
    are separate address spaces. A quantity without a value is left out, or written as the
    profile's first "not available" marker if it has one.
    """
    exponents = _choose_exponents(profile, reading)
    registers: dict[tuple[int, int], list[int]] = {}
    for quantity in profile.quantities:
        reg = _resolve(profile, quantity)
        value = reading.value(quantity)
        key = (reg.fc, reg.address)
        if value is None:
            if reg.not_available:
                marker = sorted(reg.not_available)[0]
                registers[key] = value_to_words(marker, reg.type, reg.word_order, reg.byte_order)
            continue
        exponent = exponents.get(reg.exponent_at, 0) if reg.exponent_at else 0
        raw = _raw_for(reg, value, exponent)
        try:
            registers[key] = value_to_words(raw, reg.type, reg.word_order, reg.byte_order)
        except ValueError as exc:
            raise ValueError(f"{quantity.value} = {value!r}: {exc}") from None
    for key, exponent in exponents.items():
        registers[key] = value_to_words(exponent, "int16")
    return registers


def encode_image(profile: MeterProfile, reading: Reading) -> dict[int, dict[int, int]]:
    """:func:`encode` flattened to ``{function_code: {address: word}}`` for a Modbus server."""
    image: dict[int, dict[int, int]] = {}
    for (fc, address), words in encode(profile, reading).items():
        page = image.setdefault(fc, {})
        for offset, word in enumerate(words):
            page[address + offset] = word
    return image
