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
"""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

MAX_READ_REGISTERS: Final = 125
"""Modbus limit for one FC3/FC4 request: the response PDU holds at most 125 registers."""

DEFAULT_MAX_READ_REGISTERS: Final = 50
"""Largest request for a meter whose profile does not state ``max_read_registers``.

Meters refuse requests above their own limit with exception 3 (illegal data value), and
several document one well below the protocol's 125: Carlo Gavazzi's EM300/ET300 protocol
says 50 registers per request, Eastron's manuals say 30 or 40 parameters (60 or 80
registers). 50 is within every limit documented for the shipped families, and costs at most
one more request per poll; the poller also splits a refused block (see ``split_block``)."""

DEFAULT_MAX_GAP: Final = 16
"""Unrequested registers a block read may span by default (see ``hardware/README.md``)."""

_MAX_SCALE_EXPONENT: Final = 10
"""Largest |exponent| accepted from a scale-factor register; beyond it the value is garbage."""

DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
Order = Literal["big", "little"]
FunctionCode = Literal[3, 4]


class ProfileError(ValueError):
    """A meter profile is malformed; each problem names the file and the key path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class Quantity(StrEnum):
    """A value the gateway reads from a meter; the value is the key used in profile files."""

    VOLTAGE_L1 = "voltage_l1"
    VOLTAGE_L2 = "voltage_l2"
    VOLTAGE_L3 = "voltage_l3"
    CURRENT_L1 = "current_l1"
    CURRENT_L2 = "current_l2"
    CURRENT_L3 = "current_l3"
    POWER_L1 = "power_l1"
    POWER_L2 = "power_l2"
    POWER_L3 = "power_l3"
    POWER = "power"
    ENERGY_IMPORT = "energy_import"
    ENERGY_EXPORT = "energy_export"
    FREQUENCY = "frequency"

    @property
    def dimension(self) -> str:
        """The SI unit a :class:`Reading` carries this quantity in."""
        return _DIMENSIONS[self.value.split("_", 1)[0]]

    @property
    def field_name(self) -> str:
        """The :class:`Reading` attribute, unit in the name (``current_l1_a``, ``power_w``)."""
        return f"{self.value}_{self.dimension.lower()}"


_DIMENSIONS: Final = MappingProxyType(
    {"voltage": "V", "current": "A", "power": "W", "energy": "Wh", "frequency": "Hz"}
)

_UNITS: Final = MappingProxyType(
    {
        "V": ("V", 1.0),
        "A": ("A", 1.0),
        "W": ("W", 1.0),
        "kW": ("W", 1000.0),
        "Wh": ("Wh", 1.0),
        "kWh": ("Wh", 1000.0),
        "Hz": ("Hz", 1.0),
    }
)
"""Units a register may be written in: unit -> (SI dimension, factor to that dimension)."""


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


# --------------------------------------------------------------------------------------------
# Raw word codec
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Profile model
# --------------------------------------------------------------------------------------------


class _Model(BaseModel):
    # strict: a TOML string "0x10" must not pass as an address, nor "3" as a function code.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ScaleFactorRef(_Model):
    """A register holding a power-of-ten exponent: value = raw x scale x 10**exponent."""

    address: int = Field(ge=0, le=0xFFFF, description="0-based wire address of the exponent")
    type: Literal["int16"] = "int16"
    function_code: FunctionCode | None = Field(
        default=None, description="defaults to the register's function code"
    )


class Register(_Model):
    """Where one quantity lives on the wire and how to turn its words into a number."""

    address: int = Field(ge=0, le=0xFFFF, description="0-based wire address")
    type: DataType
    unit: str = Field(description="unit of raw x scale, e.g. 'kWh'; see _UNITS")
    scale: float = Field(default=1.0, allow_inf_nan=False, description="multiplier on raw")
    scale_factor: ScaleFactorRef | None = None
    function_code: FunctionCode | None = Field(default=None, description="overrides [modbus]")
    word_order: Order | None = Field(default=None, description="overrides [modbus]")
    byte_order: Order | None = Field(default=None, description="overrides [modbus]")
    negate: bool = Field(default=False, description="meter counts export as positive")
    not_available: list[int] = Field(
        default_factory=list, description="raw integers the meter sends for 'no value'"
    )

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r}; allowed: {', '.join(_UNITS)}")
        return unit

    @field_validator("scale")
    @classmethod
    def _nonzero_scale(cls, scale: float) -> float:
        if scale == 0:
            raise ValueError("scale must not be 0")
        return scale

    @model_validator(mode="after")
    def _sentinels_fit_type(self) -> Self:
        if not self.not_available:
            return self
        if _TYPES[self.type].kind == "float":
            raise ValueError(
                f"not_available applies to integer types only; a {self.type} "
                "that is NaN or infinite is always rejected"
            )
        low, high = _int_range(self.type)
        for sentinel in self.not_available:
            if not low <= sentinel <= high:
                raise ValueError(
                    f"not_available value {sentinel:#x} is outside the {self.type} range "
                    f"{low}..{high} (write signed types as the signed number, e.g. 0x7FFFFFFF)"
                )
        return self

    @property
    def words(self) -> int:
        """Number of 16-bit registers this value occupies."""
        return _TYPES[self.type].words

    @property
    def si_factor(self) -> float:
        """Factor from :attr:`unit` to the SI unit of a :class:`Reading` (kWh -> Wh: 1000)."""
        return _UNITS[self.unit][1]


class ModbusSettings(_Model):
    """Defaults for every register of a profile, and the meter's read limits."""

    function_code: FunctionCode
    word_order: Order = "big"
    byte_order: Order = "big"
    max_read_registers: int = Field(default=DEFAULT_MAX_READ_REGISTERS, ge=4, le=MAX_READ_REGISTERS)
    max_gap: int = Field(default=DEFAULT_MAX_GAP, ge=0, le=MAX_READ_REGISTERS - 1)


class SerialDefaults(_Model):
    """How the meter ships from the factory on RS-485 (Modbus RTU)."""

    unit_id: int = Field(ge=1, le=247)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]
    parity: Literal["N", "E", "O"]
    stopbits: Literal[1, 2]
    bytesize: Literal[7, 8] = 8
    confirmed: bool = Field(description="false: not confirmed from vendor documentation")


class TcpDefaults(_Model):
    """How the meter ships from the factory on Modbus TCP."""

    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)


class MeterProfile(_Model):
    """One meter family's register map, as loaded from ``hardware/meters/<id>.toml``."""

    format: Literal[1]
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    products: list[str] = Field(min_length=1)
    template: bool = Field(default=False, description="an example to copy, not a real meter")
    modbus: ModbusSettings
    serial: SerialDefaults | None = None
    tcp: TcpDefaults | None = None
    registers: dict[Annotated[Quantity, Strict(False)], Register] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        if self.serial is None and self.tcp is None:
            problems.append("give [serial] and/or [tcp] defaults")
        spans: list[_Span] = []
        shared_exponents: dict[tuple[int, int], _Span] = {}
        for quantity, register in self.registers.items():
            path = f"registers.{quantity.value}"
            dimension = _UNITS[register.unit][0]
            if dimension != quantity.dimension:
                fitting = [u for u, (dim, _) in _UNITS.items() if dim == quantity.dimension]
                problems.append(
                    f"{path}.unit: {register.unit!r} measures {dimension}, "
                    f"{quantity.value} needs one of {', '.join(fitting)}"
                )
            resolved = _resolve(self, quantity)
            spans.append(_Span(resolved.fc, resolved.address, resolved.words, path))
            if resolved.exponent_at is not None:
                fc, address = resolved.exponent_at
                shared_exponents.setdefault(
                    (fc, address), _Span(fc, address, 1, f"{path}.scale_factor")
                )
        spans.extend(shared_exponents.values())
        for span in spans:
            if span.end > 0x10000:
                problems.append(f"{span.label}: runs past the last address 0xFFFF")
            if span.count > self.modbus.max_read_registers:
                problems.append(
                    f"{span.label}: {span.count} registers exceed "
                    f"modbus.max_read_registers = {self.modbus.max_read_registers}"
                )
        for i, first in enumerate(spans):
            for second in spans[i + 1 :]:
                if first.overlaps(second):
                    problems.append(f"{second.label} ({second}) overlaps {first.label} ({first})")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def quantities(self) -> tuple[Quantity, ...]:
        """Quantities this meter offers, in :class:`Quantity` order."""
        return tuple(q for q in Quantity if q in self.registers)


@dataclass(frozen=True, slots=True)
class _Span:
    fc: int
    address: int
    count: int
    label: str

    @property
    def end(self) -> int:
        return self.address + self.count

    def overlaps(self, other: _Span) -> bool:
        return self.fc == other.fc and self.address < other.end and other.address < self.end

    def __str__(self) -> str:
        return f"FC{self.fc} {self.address:#06x}..{self.end - 1:#06x}"


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A register with the profile's defaults filled in."""

    quantity: Quantity
    fc: int
    address: int
    words: int
    type: DataType
    word_order: Order
    byte_order: Order
    scale: float
    si_factor: float
    negate: bool
    not_available: frozenset[int]
    exponent_at: tuple[int, int] | None


def _resolve(profile: MeterProfile, quantity: Quantity) -> _Resolved:
    register = profile.registers[quantity]
    fc = register.function_code or profile.modbus.function_code
    exponent_at = None
    if register.scale_factor is not None:
        exponent_at = (register.scale_factor.function_code or fc, register.scale_factor.address)
    return _Resolved(
        quantity=quantity,
        fc=fc,
        address=register.address,
        words=register.words,
        type=register.type,
        word_order=register.word_order or profile.modbus.word_order,
        byte_order=register.byte_order or profile.modbus.byte_order,
        scale=register.scale,
        si_factor=register.si_factor,
        negate=register.negate,
        not_available=frozenset(register.not_available),
        exponent_at=exponent_at,
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def parse_profile(data: Mapping[str, Any], source: str = "<profile>") -> MeterProfile:
    """Validate already-parsed TOML data; errors name ``source`` and each key path."""
    try:
        return MeterProfile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # An unknown quantity's own contents are not worth reporting on top of its name.
        unknown = {e["loc"][:2] for e in errors if _is_key_error(e)}
        problems = [
            f"{source}: {line}"
            for error in errors
            if _is_key_error(error) or error["loc"][:2] not in unknown
            for line in _describe(error).splitlines()
        ]
        raise ProfileError(problems) from None


def load_profile(path: Path | Traversable | str) -> MeterProfile:
    """Read and validate one profile file (duplicate TOML keys are rejected by the parser).

    ``path`` may be a shipped file (``importlib.resources``); see ``edgegw.hardware_catalogue``.
    """
    path = Path(path) if isinstance(path, str) else path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_profile(data, source=str(path))


def load_profiles(directory: Path | str) -> dict[str, MeterProfile]:
    """Load every ``*.toml`` in ``directory``, keyed by profile id.

    All broken files are reported together, so one ``edgegw meter profiles`` run shows every
    mistake.
    Two files with the same id are rejected: usually a copied ``generic.toml`` whose id was
    not changed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ProfileError([f"{directory}: not a directory of meter profiles"])
    profiles: dict[str, MeterProfile] = {}
    origin: dict[str, Path] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            problems.extend(exc.problems)
            continue
        if profile.id in profiles:
            problems.append(
                f"{path}: id {profile.id!r} is already used by {origin[profile.id]}; "
                "every profile needs its own id"
            )
            continue
        profiles[profile.id] = profile
        origin[profile.id] = path
    if problems:
        raise ProfileError(problems)
    return profiles


def _is_key_error(error: ErrorDetails) -> bool:
    return bool(error["loc"]) and error["loc"][-1] == "[key]"


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as 'key.path: what is wrong; what is allowed'."""
    loc = error["loc"]
    path = ".".join(str(part) for part in loc if part != "[key]")
    kind = error["type"]
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        # Cross-field checks already carry their own key paths, one per line.
        return message if not path else f"{path}: {message}"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key{hint}"
    if kind == "missing":
        return f"{path}: required key is missing"
    if _is_key_error(error):
        allowed_quantities = ", ".join(q.value for q in Quantity)
        return f"{path}: unknown quantity; allowed: {allowed_quantities}"
    return f"{path or '(top level)'}: {error['msg']} (got {error['input']!r})"


def _allowed_keys(parent: tuple[int | str, ...]) -> list[str]:
    sections: dict[tuple[int | str, ...], type[BaseModel]] = {
        (): MeterProfile,
        ("modbus",): ModbusSettings,
        ("serial",): SerialDefaults,
        ("tcp",): TcpDefaults,
        ("registers", "*"): Register,
        ("registers", "*", "scale_factor"): ScaleFactorRef,
    }
    key = tuple("*" if i == 1 and parent[0] == "registers" else p for i, p in enumerate(parent))
    model = sections.get(key)
    return list(model.model_fields) if model is not None else []


# --------------------------------------------------------------------------------------------
# Readings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One meter reading in SI units; ``None`` means not read, not offered, or invalid.

    Power is positive when the site imports from the grid. ``invalid`` says why a value that
    was read is ``None`` (NaN, "not available" marker ...), so nothing bad is passed on
    silently.
    """

    voltage_l1_v: float | None = None
    voltage_l2_v: float | None = None
    voltage_l3_v: float | None = None
    current_l1_a: float | None = None
    current_l2_a: float | None = None
    current_l3_a: float | None = None
    power_l1_w: float | None = None
    power_l2_w: float | None = None
    power_l3_w: float | None = None
    power_w: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    frequency_hz: float | None = None
    invalid: Mapping[Quantity, str] = field(default_factory=dict)

    @classmethod
    def from_values(
        cls,
        values: Mapping[Quantity, float | None],
        invalid: Mapping[Quantity, str] | None = None,
    ) -> Reading:
        """Build a reading from ``{Quantity: value}``."""
        fields: dict[str, Any] = {q.field_name: v for q, v in values.items()}
        return cls(**fields, invalid=dict(invalid or {}))

    def value(self, quantity: Quantity) -> float | None:
        """The value of ``quantity`` in its SI unit (see :attr:`Quantity.dimension`)."""
        number: float | None = getattr(self, quantity.field_name)
        return number

    def values(self) -> dict[Quantity, float]:
        """Every quantity that has a value."""
        found = ((q, self.value(q)) for q in Quantity)
        return {q: v for q, v in found if v is not None}

    @property
    def currents_a(self) -> tuple[float | None, float | None, float | None]:
        """Per-phase currents L1, L2, L3 in A."""
        return (self.current_l1_a, self.current_l2_a, self.current_l3_a)

    @property
    def voltages_v(self) -> tuple[float | None, float | None, float | None]:
        """Per-phase voltages to neutral L1, L2, L3 in V."""
        return (self.voltage_l1_v, self.voltage_l2_v, self.voltage_l3_v)

    @property
    def powers_w(self) -> tuple[float | None, float | None, float | None]:
        """Per-phase active power L1, L2, L3 in W, import positive."""
        return (self.power_l1_w, self.power_l2_w, self.power_l3_w)

    def require(self, *quantities: Quantity) -> None:
        """Raise :class:`BadReading` unless every one of ``quantities`` has a value."""
        problems = {q: self.invalid.get(q, "not read") for q in quantities if self.value(q) is None}
        if problems:
            raise BadReading(problems, partial=self)


class BadReading(ValueError):
    """The meter answered, but with values the gateway must not act on.

    ``problems`` maps each bad quantity to the reason; ``partial`` holds the values that were
    fine, for logging or for a caller that can do without the bad ones.
    """

    def __init__(
        self,
        problems: Mapping[Quantity, str],
        partial: Reading | None = None,
        meter: str = "",
    ) -> None:
        self.problems = dict(problems)
        self.partial = partial
        detail = "; ".join(f"{q.value}: {why}" for q, why in self.problems.items())
        prefix = f"meter profile {meter!r}: " if meter else ""
        super().__init__(f"{prefix}bad reading: {detail}")


# --------------------------------------------------------------------------------------------
# Planning block reads
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockRead:
    """One Modbus request: ``count`` registers from ``address`` with ``function_code``."""

    function_code: int
    address: int
    count: int
    quantities: tuple[Quantity, ...]

    @property
    def key(self) -> tuple[int, int]:
        """The ``(function_code, address)`` key :func:`decode` expects for this block."""
        return (self.function_code, self.address)

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.address + self.count


def _wanted(profile: MeterProfile, quantities: Iterable[Quantity] | None) -> list[Quantity]:
    if quantities is None:
        return list(profile.quantities)
    wanted = list(dict.fromkeys(Quantity(q) for q in quantities))
    missing = [q.value for q in wanted if q not in profile.registers]
    if missing:
        offered = ", ".join(q.value for q in profile.quantities)
        raise ProfileError(
            [
                f"meter profile {profile.id!r} has no register for {', '.join(missing)} "
                f"(it offers: {offered})"
            ]
        )
    return wanted


def plan_reads(
    profile: MeterProfile, quantities: Iterable[Quantity] | None = None
) -> list[BlockRead]:
    """Cover ``quantities`` (default: all the meter offers) with as few reads as allowed.

    Registers are merged into one request when they share a function code, the hole between
    them is at most ``modbus.max_gap`` registers (0: never read registers the map does not
    name) and the request stays within ``modbus.max_read_registers``. Scale-factor registers
    are read along. Merging greedily from the lowest address gives the fewest requests, since
    spans never overlap and any feasible block stays feasible when it starts later.
    """
    spans: dict[tuple[int, int], tuple[int, Quantity | None]] = {}
    for quantity in _wanted(profile, quantities):
        reg = _resolve(profile, quantity)
        spans[(reg.fc, reg.address)] = (reg.words, quantity)
        if reg.exponent_at is not None:
            spans.setdefault(reg.exponent_at, (1, None))
    limit = profile.modbus.max_read_registers
    gap = profile.modbus.max_gap
    blocks: list[BlockRead] = []
    current: BlockRead | None = None
    for (fc, address), (count, owner) in sorted(spans.items()):
        named = (owner,) if owner is not None else ()
        end = address + count
        if (
            current is not None
            and current.function_code == fc
            and address - current.end <= gap
            and end - current.address <= limit
        ):
            current = BlockRead(
                fc, current.address, end - current.address, current.quantities + named
            )
            continue
        if current is not None:
            blocks.append(current)
        current = BlockRead(fc, address, count, named)
    if current is not None:
        blocks.append(current)
    return blocks


def split_block(profile: MeterProfile, block: BlockRead) -> tuple[BlockRead, BlockRead] | None:
    """``block`` as two smaller requests that together read the same values, or ``None`` if
    it holds one value only (a value is never split across requests).

    For a block the meter refused (exception 3 "illegal data value": too many registers;
    exception 2 "illegal data address": the span crosses registers it does not define). The
    cut falls at the value boundary nearest the middle, and each half drops the hole at the
    cut, so a hole the meter refuses ends up outside both halves once small enough.
    """
    spans: list[tuple[int, int, Quantity | None]] = []
    for quantity in block.quantities:
        reg = _resolve(profile, quantity)
        spans.append((reg.address, reg.words, quantity))
    exponents = {_resolve(profile, q).exponent_at for q in profile.quantities}
    for at in sorted(e for e in exponents if e is not None):
        fc, address = at
        if fc == block.function_code and block.address <= address < block.end:
            spans.append((address, 1, None))  # a scale factor planned into this block
    spans.sort(key=lambda span: span[0])
    if len(spans) < 2:
        return None
    middle = block.address + block.count / 2
    best = min(
        range(1, len(spans)),
        key=lambda i: (abs(spans[i][0] - middle), i),
    )
    halves: list[BlockRead] = []
    for part in (spans[:best], spans[best:]):
        start = part[0][0]
        end = max(address + words for address, words, _ in part)
        named = tuple(q for _, _, q in part if q is not None)
        halves.append(BlockRead(block.function_code, start, end - start, named))
    return halves[0], halves[1]


# --------------------------------------------------------------------------------------------
# Decoding and encoding
# --------------------------------------------------------------------------------------------


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
