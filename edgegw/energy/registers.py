"""Electricity meter register maps as data, and the pure codec around them.

Every supported meter is described by a profile file in ``hardware/meters/*.toml`` (the
schema is documented in ``hardware/README.md``): where each quantity lives on the wire, how
its 16-bit words are laid out, how it is scaled, and the meter's serial defaults. Adding a
meter is then a data change that an installer can review against the datasheet, not a code
change.

This module turns such a file into a typed :class:`MeterProfile`, plans the fewest Modbus
block reads that cover the quantities the gateway needs (:func:`plan_reads`), decodes the raw
words of those blocks into a :class:`Reading` in SI units (:func:`decode`), and encodes a
reading back into registers (:func:`encode`, :func:`encode_image`) for the simulated meter and
the tests. It does no Modbus I/O: the bus client reads the planned blocks and hands the words
over, so every word-order, sign and scaling rule is tested without hardware.

Conventions of a :class:`Reading`: voltages in V, currents in A, power in W and **positive when
the site imports from the grid**, energy in Wh, frequency in Hz.

The code lives in :mod:`~edgegw.energy.registerwords` (words and numbers),
:mod:`~edgegw.energy.meterprofile` (quantities, the profile model, loading),
:mod:`~edgegw.energy.meterreading`, :mod:`~edgegw.energy.blockplan` and
:mod:`~edgegw.energy.registercodec` (decode, encode); every name is importable from here.
"""

from __future__ import annotations

from edgegw.energy.blockplan import BlockRead, plan_reads, split_block
from edgegw.energy.meterprofile import (
    DEFAULT_MAX_GAP,
    DEFAULT_MAX_READ_REGISTERS,
    MAX_READ_REGISTERS,
    FunctionCode,
    MeterProfile,
    ModbusSettings,
    ProfileError,
    Quantity,
    Register,
    ScaleFactorRef,
    SerialDefaults,
    TcpDefaults,
    load_profile,
    load_profiles,
    parse_profile,
)
from edgegw.energy.meterreading import BadReading, Reading
from edgegw.energy.registercodec import decode, encode, encode_image
from edgegw.energy.registerwords import DataType, Order, value_to_words, words_for, words_to_value

__all__ = [
    "DEFAULT_MAX_GAP",
    "DEFAULT_MAX_READ_REGISTERS",
    "MAX_READ_REGISTERS",
    "BadReading",
    "BlockRead",
    "DataType",
    "FunctionCode",
    "MeterProfile",
    "ModbusSettings",
    "Order",
    "ProfileError",
    "Quantity",
    "Reading",
    "Register",
    "ScaleFactorRef",
    "SerialDefaults",
    "TcpDefaults",
    "decode",
    "encode",
    "encode_image",
    "load_profile",
    "load_profiles",
    "parse_profile",
    "plan_reads",
    "split_block",
    "value_to_words",
    "words_for",
    "words_to_value",
]
