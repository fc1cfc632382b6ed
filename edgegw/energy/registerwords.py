"""16-bit Modbus words to numbers and back, for every data type and word order a meter profile
may name.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]


Order = Literal["big", "little"]


@dataclass(frozen=True, slots=True)
class _TypeInfo:
    words: int
    kind: Literal["int", "uint", "float"]


_TYPES: Final = MappingProxyType(
    {
        "int16": _TypeInfo(1, "int"),
        "uint16": _TypeInfo(1, "uint"),
        "int32": _TypeInfo(2, "int"),
        "uint32": _TypeInfo(2, "uint"),
        "int64": _TypeInfo(4, "int"),
        "uint64": _TypeInfo(4, "uint"),
        "float32": _TypeInfo(2, "float"),
        "float64": _TypeInfo(4, "float"),
    }
)


def words_for(data_type: DataType) -> int:
    """Number of 16-bit registers a value of ``data_type`` occupies."""
    return _TYPES[data_type].words


def _int_range(data_type: str) -> tuple[int, int]:
    info = _TYPES[data_type]
    bits = 16 * info.words
    if info.kind == "int":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def words_to_value(
    words: Sequence[int], data_type: DataType, word_order: Order = "big", byte_order: Order = "big"
) -> int | float:
    """Assemble registers (as read off the wire) into a number, before any scaling.

    ``word_order="little"`` means the least significant word comes first (Carlo Gavazzi's
    INT32); ``byte_order="little"`` means each register carries its two bytes swapped.
    """
    info = _TYPES[data_type]
    if len(words) != info.words:
        raise ValueError(f"{data_type} needs {info.words} registers, got {len(words)}")
    ordered = list(words) if word_order == "big" else list(reversed(words))
    data = b"".join(word.to_bytes(2, byte_order) for word in ordered)
    if data_type == "float32":
        (number,) = struct.unpack(">f", data)
        return _shortest_float32(number)
    if data_type == "float64":
        (number,) = struct.unpack(">d", data)
        return float(number)
    return int.from_bytes(data, "big", signed=info.kind == "int")


def _shortest_float32(number: float) -> float:
    """The shortest decimal that is the same float32: the meter's 230.1, not 230.10000610."""
    if not math.isfinite(number):
        return number
    packed = struct.pack(">f", number)
    for digits in range(6, 10):
        candidate = float(f"{number:.{digits}g}")
        if struct.pack(">f", candidate) == packed:
            return candidate
    return number


def value_to_words(
    value: float, data_type: DataType, word_order: Order = "big", byte_order: Order = "big"
) -> list[int]:
    """Inverse of :func:`words_to_value`; integer types need an integral, in-range value."""
    info = _TYPES[data_type]
    if info.kind == "float":
        try:
            data = struct.pack(">f" if info.words == 2 else ">d", value)
        except OverflowError as exc:
            raise ValueError(f"{value!r} does not fit a {data_type}") from exc
    else:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not an integer, cannot store it as {data_type}")
        number = int(value)
        low, high = _int_range(data_type)
        if not low <= number <= high:
            raise ValueError(f"{number} is outside the {data_type} range {low}..{high}")
        data = number.to_bytes(2 * info.words, "big", signed=info.kind == "int")
    words = [int.from_bytes(data[i : i + 2], byte_order) for i in range(0, len(data), 2)]
    return words if word_order == "big" else list(reversed(words))
