"""The load-capping sections: ``[site]``, ``[[circuits]]``, ``[buses.*]`` and ``[[meters]]``."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edgegw.config.base import _Model

log = logging.getLogger(__name__)


MAX_SITE_LIMIT_A = 10_000.0
"""No low-voltage site connection carries more per phase; a larger limit_a caps nothing."""


class SiteConfig(_Model):
    """The site's connection and how the chargers share it (load capping)."""

    phases: Literal[1, 3] = Field(
        default=3,
        description="Phases of the site's supply: 3, or 1 for a single-phase supply (L1 "
        "only: every charger is wired to L1, limit_a and fallback_ev_a are one number, and "
        "the site meter may be a single-phase meter; L2 and L3 count as 0 A).",
    )
    limit_a: float | tuple[float, float, float] = Field(
        description="Main fuse per phase (A): one number, or [L1, L2, L3]."
    )
    margin_a: float = Field(default=2.0, ge=0, description="Kept free below the limit (A).")
    fallback_ev_a: float | tuple[float, float, float] | None = Field(
        default=None,
        description=(
            "What all chargers together may draw per phase while the meter is lost (A). "
            "Unset: every session is paused until the meter is back."
        ),
    )
    meter_role: Literal["grid", "non_ev"] = Field(
        default="grid",
        description="'grid': the meter measures the whole site, chargers included; "
        "'non_ev': it measures only the building's other loads.",
    )
    ramp_a_per_s: float = Field(
        default=1.0, gt=0, description="Raise rate (A/s); cuts are instant."
    )
    control_interval: float = Field(
        default=1.0, gt=0, le=60, description="Seconds between two control rounds."
    )
    meter_lost_after: float = Field(
        default=5.0, gt=0, le=120, description="No valid reading this long → fallback (s)."
    )
    min_change_a: float = Field(
        default=0.5, ge=0, description="A new limit is sent only if it moves at least this (A)."
    )
    decision_log_size: int = Field(
        default=86400, ge=0, description="Control rounds kept in the decision log."
    )

    @field_validator("limit_a", "fallback_ev_a")
    @classmethod
    def _one_phase_one_number(
        cls, value: float | tuple[float, float, float] | None, info: ValidationInfo
    ) -> float | tuple[float, float, float] | None:
        if info.data.get("phases") == 1 and isinstance(value, tuple):
            raise ValueError(
                "a single-phase site (phases = 1) has one phase: give one number, not [L1, L2, L3]"
            )
        return value

    def limits(self) -> tuple[float, float, float]:
        return _per_phase(self.limit_a)

    def fallback(self) -> tuple[float, float, float] | None:
        return None if self.fallback_ev_a is None else _per_phase(self.fallback_ev_a)

    @model_validator(mode="after")
    def _consistent(self) -> SiteConfig:
        limits = self.limits()
        if min(limits) <= 0:
            raise ValueError("limit_a must be > 0 on every phase")
        if max(limits) > MAX_SITE_LIMIT_A:
            raise ValueError(
                f"limit_a must be at most {MAX_SITE_LIMIT_A:g} A on every phase (the main fuse "
                "of the site's connection)"
            )
        if self.margin_a >= min(limits):
            raise ValueError(f"margin_a ({self.margin_a} A) must be below every phase limit")
        fallback = self.fallback()
        if fallback is not None:
            for phase, (ev, limit) in enumerate(zip(fallback, limits, strict=True), 1):
                if ev < 0 or ev > limit - self.margin_a:
                    raise ValueError(
                        f"fallback_ev_a on L{phase} ({ev} A) must be between 0 and limit_a - "
                        f"margin_a ({limit - self.margin_a} A), or the main fuse can trip "
                        "while the meter is lost"
                    )
        return self


def _per_phase(value: float | tuple[float, float, float]) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        return (float(value), float(value), float(value))
    return value


class CircuitConfig(_Model):
    """A distribution board (or any fused branch) between the site and some chargers.

    Chargers name it with ``circuit = "<name>"``. Without a meter of its own only the chargers
    under it count against its limit; with one (``meter``, a ``[[meters]]`` entry with
    ``role = "circuit"``) the board's other loads count too, estimated as the site's are, and
    the board alone falls back while its meter is lost.
    """

    name: str = Field(min_length=1, description="Its name; chargers and circuits refer to it.")
    limit_a: float | tuple[float, float, float] = Field(
        description="Its fuse per phase (A): one number, or [L1, L2, L3]."
    )
    margin_a: float | None = Field(
        default=None, ge=0, description="Kept free below its limit (A); unset: the site's."
    )
    parent: str | None = Field(
        default=None, description="The circuit it hangs on; unset: directly on the site."
    )
    meter: str | None = Field(
        default=None,
        description="Name of the [[meters]] entry (role = 'circuit') measuring this board; "
        "unset: no meter, only the chargers under it count.",
    )
    meter_role: Literal["total", "non_ev"] | None = Field(
        default=None,
        description="What its meter measures: 'total' (default: the board's whole load, the "
        "chargers under it included) or 'non_ev' (its load apart from those chargers).",
    )
    fallback_ev_a: float | tuple[float, float, float] | None = Field(
        default=None,
        description="What the chargers under it may draw together per phase while its meter "
        "is lost (A); unset: they are paused until it is back. Needs a meter.",
    )

    def limits(self) -> tuple[float, float, float]:
        return _per_phase(self.limit_a)

    def margin(self, site: SiteConfig) -> float:
        return site.margin_a if self.margin_a is None else self.margin_a

    def fallback(self) -> tuple[float, float, float] | None:
        return None if self.fallback_ev_a is None else _per_phase(self.fallback_ev_a)

    @property
    def metered_as(self) -> Literal["total", "non_ev"] | None:
        """What its meter measures (None: it has no meter)."""
        if self.meter is None:
            return None
        return self.meter_role or "total"

    @model_validator(mode="after")
    def _positive(self) -> CircuitConfig:
        limits = self.limits()
        if min(limits) <= 0:
            raise ValueError("limit_a must be > 0 on every phase")
        if self.margin_a is not None and self.margin_a >= min(limits):
            raise ValueError(f"margin_a ({self.margin_a} A) must be below every phase limit")
        if self.parent == self.name:
            raise ValueError("parent: a circuit cannot hang on itself")
        if self.meter is None:
            for key in ("meter_role", "fallback_ev_a"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key} is set but the circuit has no meter: give meter = '<name of a "
                        '[[meters]] entry with role = "circuit">\', or remove it'
                    )
        fallback = self.fallback()
        if fallback is not None:
            for phase, ev in enumerate(fallback, 1):
                if ev < 0:
                    raise ValueError(f"fallback_ev_a on L{phase} ({ev} A) must be >= 0")
        return self


class BusConfig(_Model):
    """One physical Modbus connection: a TCP gateway/meter, an RS-485 serial line (RTU), or an
    RS-485 line behind a transparent RS-485-to-Ethernet converter (RTU frames over TCP)."""

    transport: Literal["tcp", "rtu", "rtu-over-tcp"] = Field(
        description="'tcp', 'rtu' (RS-485 serial) or 'rtu-over-tcp' (RTU frames through a "
        "transparent RS-485-to-Ethernet converter)."
    )
    host: str | None = Field(
        default=None, description="TCP and RTU over TCP: meter, gateway or converter address."
    )
    port: int = Field(default=502, ge=1, le=65535, description="TCP port.")
    device: str | None = Field(default=None, description="RTU: serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(default=9600, description="RTU: baud rate.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="RTU: parity N, E or O.")
    stopbits: Literal[1, 2] = Field(default=1, description="RTU: stop bits.")
    bytesize: Literal[7, 8] = Field(default=8, description="RTU: data bits.")
    timeout: float = Field(default=1.0, gt=0, le=30, description="Answer timeout (s).")
    retries: int = Field(default=1, ge=0, le=5, description="Retries after a timeout.")
    interframe_delay: float = Field(
        default=0.0, ge=0, le=1, description="Extra silence between two requests (s)."
    )

    @model_validator(mode="after")
    def _endpoint(self) -> BusConfig:
        if self.transport != "rtu" and not self.host:
            raise ValueError(f"a {self.transport!r} bus needs host")
        if self.transport == "rtu" and not self.device:
            raise ValueError("an 'rtu' bus needs device")
        if self.baudrate not in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200):
            raise ValueError(f"baudrate {self.baudrate} is not a standard Modbus RTU rate")
        return self


class MeterConfig(_Model):
    """A meter on a bus. Exactly one has role 'site' (the one load capping follows)."""

    name: str = Field(default="site", description="Name shown in status and logs.")
    bus: str = Field(default="main", description="Key of the [buses.<name>] it hangs on.")
    profile: str = Field(description="Register map: a file name in hardware/meters/ (no .toml).")
    unit_id: int = Field(default=1, ge=0, le=247, description="Modbus unit (slave) id.")
    role: Literal["site", "circuit", "monitor"] = Field(
        default="site",
        description="'site': load capping follows it; 'circuit': a board's meter, named by "
        "that [[circuits]] entry's meter; 'monitor': shown only.",
    )
    poll_interval: float = Field(default=1.0, gt=0, le=300, description="Seconds between reads.")
