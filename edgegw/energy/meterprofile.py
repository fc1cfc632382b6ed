"""A meter's register map as data: the quantities the gateway reads, the typed
:class:`MeterProfile` of a ``hardware/meters/*.toml`` file, and loading such files with one
line per problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

from edgegw.energy.registerwords import _TYPES, DataType, Order, _int_range

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
