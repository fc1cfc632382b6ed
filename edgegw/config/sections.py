"""The smaller sections: store, logging, auth, sync, daemon, control, MQTT and tariffs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from edgegw.config.base import _FiniteFloats, _Model
from edgegw.telemetry.settings import MqttConfig


class StoreConfig(_Model):
    path: Path = Field(
        default=Path("/var/lib/edgegw/edgegw.db"), description="SQLite database file."
    )
    message_log_size: int = Field(
        default=20000,
        ge=0,
        le=1_000_000,
        description=(
            "OCPP frames kept in the troubleshooting message log, in memory (0 = none); "
            "written next to the database only on stop and by `edgegw messages dump`."
        ),
    )
    message_log_mb: float = Field(
        default=16.0,
        ge=0.25,
        le=1024,
        allow_inf_nan=False,
        description="Memory the message log may use (MiB): big frames evict old ones sooner.",
    )

    @property
    def message_log_bytes(self) -> int:
        return int(self.message_log_mb * 2**20)


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    frames: bool = Field(default=False, description="Log every OCPP frame at debug level.")


class AuthConfig(_Model):
    """How cards are decided when the cloud cannot decide (see ``edgegw.auth.authorizer``)."""

    unknown_cards: Literal["reject", "accept"] = Field(
        default="reject",
        description="Cards nobody vouches for when the gateway must decide (standalone/offline).",
    )
    online_timeout: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Wait this long for the cloud's Authorize answer, then decide locally (s).",
    )
    cache_size: int = Field(
        default=10000, ge=0, le=1_000_000, description="Cards remembered from cloud answers."
    )
    cache_days: float = Field(
        default=30,
        gt=0,
        description="A cached Accepted answer without expiryDate is trusted this long (days).",
    )
    stop_transaction_on_invalid_id: bool = Field(
        default=True,
        description=(
            "A session accepted offline that the cloud later refuses is stopped (true) or "
            "allowed to finish and recorded (false)."
        ),
    )
    push_local_list: bool = Field(
        default=True,
        description="Keep the local list of chargers that support one in step (SendLocalList).",
    )
    site_overrides_cloud: bool = Field(
        default=True,
        description=(
            "A card the site's own records refuse (Blocked, Expired, Invalid, not allowed on "
            "that charger) is refused even when the cloud accepts it; false: the cloud alone "
            "decides while it answers."
        ),
    )


class SyncConfig(_Model):
    """Store-and-forward of transaction messages queued while the cloud was unreachable."""

    max_attempts: int = Field(
        default=5, ge=1, le=100, description="Tries per queued message before it is parked."
    )
    retry_interval: float = Field(
        default=5.0, gt=0, description="Wait before a retry, times the attempts so far (s)."
    )
    max_retry_interval: float = Field(
        default=300.0, gt=0, description="Longest wait between two tries (s)."
    )


class DaemonConfig(_Model):
    shutdown_timeout: float = Field(
        default=10, gt=0, le=300, description="Budget for a clean shutdown (s)."
    )
    hardware_dir: Path = Field(
        default=Path("/etc/edgegw/hardware"),
        description="The site's own device files: meters/<id>.toml and chargers/<id>.toml here "
        "add devices or replace the shipped file of the same name.",
    )


class ControlConfig(_Model):
    """The local control socket the CLI and the TUI talk to."""

    socket: Path = Field(default=Path("/run/edgegw/control.sock"), description="Unix socket path.")
    group: str | None = Field(
        default="edgegw",
        description='Group allowed to use it (mode 0660); "" or unset: owner only (0600).',
    )
    admin_group: str | None = Field(
        default=None,
        description="Group whose members may also run admin ops (e.g. the kiosk TUI's user).",
    )


class _MqttSection(MqttConfig, _FiniteFloats):
    """``[mqtt]`` (defined with the publisher) under the same float check as every section."""


_CLOCK_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"


class TariffBandConfig(_Model):
    """A time of day with its own prices (``[[tariffs.bands]]``), wall clock of the tariff."""

    start: str = Field(pattern=_CLOCK_TIME, description="From this time of day (HH:MM).")
    end: str = Field(
        pattern=_CLOCK_TIME,
        description="Until this time of day (HH:MM); before start: across midnight.",
    )
    per_kwh: float | None = Field(
        default=None, ge=0, description="Price per kWh (unset: the tariff's)."
    )
    per_hour: float | None = Field(
        default=None, ge=0, description="Price per hour connected (unset: the tariff's)."
    )


class TariffConfig(_Model):
    """How the building prices a session (``[[tariffs]]``); the first that matches applies."""

    name: str = Field(min_length=1, description="Shown in reports.")
    currency: str = Field(
        default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code; the same for all."
    )
    timezone: str = Field(default="UTC", description="Time zone of the bands (IANA name).")
    per_session: float = Field(default=0.0, ge=0, description="Fixed price per session.")
    per_kwh: float = Field(default=0.0, ge=0, description="Price per kWh.")
    per_hour: float = Field(default=0.0, ge=0, description="Price per hour connected.")
    bands: list[TariffBandConfig] = Field(default_factory=list)
    card_groups: list[str] = Field(
        default_factory=list, description="For the cards of these card groups."
    )
    charger_groups: list[str] = Field(
        default_factory=list, description="For sessions on these charger groups."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use e.g. Europe/Brussels") from None
        return value

    @model_validator(mode="after")
    def _bands_apart(self) -> TariffConfig:
        taken: list[tuple[int, int, str]] = []
        for band in self.bands:
            start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (band.start, band.end))
            if start == end:
                raise ValueError(f"band {band.start}-{band.end} is empty")
            spans = [(start, end)] if start < end else [(start, 1440), (0, end)]
            for a, b in spans:
                for c, d, other in taken:
                    if a < d and c < b:
                        raise ValueError(f"bands {other} and {band.start}-{band.end} overlap")
                taken.append((a, b, f"{band.start}-{band.end}"))
        return self
