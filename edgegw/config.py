"""The configuration file: one typed model, validated as a whole.

The file is TOML (default ``/etc/edgegw/edgegw.toml``). Unknown keys are rejected and every
problem is reported with its key path (``chargers[1].cloud_password``) and what is allowed, all at
once, so an installer fixes the file in one pass. Secrets may be written inline, or read from a
file (``{ file = "/etc/edgegw/secrets/cp1" }``) or a systemd credential
(``{ credential = "cp1-cloud" }``, looked up in ``$CREDENTIALS_DIRECTORY``); they are resolved when
the file is loaded, never at import time, and never printed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edgegw.mqtt.settings import MqttConfig

DEFAULT_CONFIG_PATH = Path("/etc/edgegw/edgegw.toml")

# OCPP 2.0.1 limits the identity to 48 chars and forbids ':' (it is the Basic-auth user name);
# '/' would break the URL path. We apply the same rule to 1.6 so configs survive an upgrade.
CHARGER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._\-*+=|@~]{1,48}$")


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every one of them."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretFile(_Model):
    file: Path = Field(description="Read the secret from this file (trailing newline removed).")


class SecretCredential(_Model):
    credential: str = Field(
        min_length=1, description="Name of a systemd credential in $CREDENTIALS_DIRECTORY."
    )


SecretSource = str | SecretFile | SecretCredential


def _resolve_secret(value: SecretSource, info: ValidationInfo) -> SecretStr:
    if isinstance(value, str):
        return SecretStr(value)
    if isinstance(value, SecretFile):
        path = value.file
    else:
        ctx: Mapping[str, Any] = info.context or {}
        directory = ctx.get("credentials_directory") or os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ValueError(
                f"credential {value.credential!r} requested but $CREDENTIALS_DIRECTORY is not "
                "set (use LoadCredential= in the systemd unit, or { file = ... })"
            )
        path = Path(directory) / value.credential
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read secret from {path}: {exc.strerror}") from exc
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"secret file {path} is empty")
    return SecretStr(secret)


class ServerConfig(_Model):
    """The local OCPP server the site's chargers connect to."""

    host: str = Field(default="0.0.0.0", description="Address to listen on.")
    port: int = Field(default=9000, ge=0, le=65535, description="TCP port (0 = any free port).")
    path: str = Field(
        default="/ocpp", description="URL path; chargers connect to ws://host:port<path>/<id>."
    )
    allow_unknown_chargers: bool = Field(
        default=False, description="Let any identity connect (installer/test convenience)."
    )
    heartbeat_interval: int = Field(
        default=300, ge=10, le=86400, description="Heartbeat interval (s) in local boot answers."
    )
    ping_interval: float = Field(
        default=30, ge=0, description="WebSocket ping interval (s); 0 disables pings."
    )
    ping_timeout: float = Field(default=30, gt=0, description="Close if no pong within (s).")
    max_message_size: int = Field(
        default=65536, ge=1024, le=16 * 1024 * 1024, description="Largest frame accepted (bytes)."
    )
    validate_schemas: bool = Field(
        default=True, description="Check charger calls against the OCPP 1.6 JSON schemas."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "//" in value or any(c in value for c in "?#"):
            raise ValueError("must start with '/' and contain no '//', '?' or '#'")
        return value.rstrip("/") or ""


class CloudConfig(_Model):
    """The operator's cloud CSMS; every charger is relayed to ``<url>/<charger id>``."""

    url: str = Field(description="ws:// or wss:// base URL of the CSMS.")
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the CSMS certificate (wss only)."
    )
    connect_timeout: float = Field(default=10, gt=0, description="Opening handshake timeout (s).")
    call_timeout: float = Field(
        default=30, gt=0, description="How long to wait for the CSMS to answer a call (s)."
    )
    reconnect_min_delay: float = Field(
        default=1, gt=0, description="First reconnect delay (s); doubles up to the maximum."
    )
    reconnect_max_delay: float = Field(default=60, gt=0, description="Longest reconnect delay (s).")
    ping_interval: float = Field(default=30, ge=0, description="WebSocket ping interval (s).")
    ping_timeout: float = Field(default=30, gt=0, description="Close if no pong within (s).")
    max_message_size: int = Field(
        default=1024 * 1024, ge=1024, description="Largest frame accepted from the CSMS (bytes)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError("must be a ws:// or wss:// URL with a host name")
        if parts.query or parts.fragment:
            raise ValueError("must not contain a query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> CloudConfig:
        if self.ca_file is not None:
            if not self.url.startswith("wss://"):
                raise ValueError("ca_file is only used with a wss:// url")
            if not self.ca_file.is_file():
                raise ValueError(f"ca_file {self.ca_file} does not exist")
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_min_delay")
        return self


class StoreConfig(_Model):
    path: Path = Field(
        default=Path("/var/lib/edgegw/edgegw.db"), description="SQLite database file."
    )
    message_log_size: int = Field(
        default=20000, ge=0, description="OCPP frames kept in the message log (0 = none)."
    )


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


class SiteConfig(_Model):
    """The site's connection and how the chargers share it (load capping)."""

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

    def limits(self) -> tuple[float, float, float]:
        return _per_phase(self.limit_a)

    def fallback(self) -> tuple[float, float, float] | None:
        return None if self.fallback_ev_a is None else _per_phase(self.fallback_ev_a)

    @model_validator(mode="after")
    def _consistent(self) -> SiteConfig:
        limits = self.limits()
        if min(limits) <= 0:
            raise ValueError("limit_a must be > 0 on every phase")
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


class BusConfig(_Model):
    """One physical Modbus connection: a TCP gateway/meter, or an RS-485 serial line (RTU)."""

    transport: Literal["tcp", "rtu"] = Field(description="'tcp' or 'rtu' (RS-485 serial).")
    host: str | None = Field(default=None, description="TCP: meter or Modbus gateway address.")
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
        if self.transport == "tcp" and not self.host:
            raise ValueError("a 'tcp' bus needs host")
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
    role: Literal["site", "monitor"] = Field(
        default="site", description="'site': load capping follows it; 'monitor': shown only."
    )
    poll_interval: float = Field(default=1.0, gt=0, le=300, description="Seconds between reads.")


class DaemonConfig(_Model):
    shutdown_timeout: float = Field(
        default=10, gt=0, le=300, description="Budget for a clean shutdown (s)."
    )


class ControlConfig(_Model):
    """The local control socket the CLI and the TUI talk to."""

    socket: Path = Field(default=Path("/run/edgegw/control.sock"), description="Unix socket path.")
    group: str | None = Field(
        default="edgegw",
        description='Group allowed to use it (mode 0660); "" or unset: owner only (0600).',
    )


class ChargerConfig(_Model):
    """One charger known to the site."""

    id: str = Field(description="OCPP identity (the last URL path segment).")
    label: str = Field(default="", description="Human name shown to caretakers.")
    password_hash: str | None = Field(
        default=None,
        description="Hash of the charger's Basic-auth password ('edgegw password-hash').",
    )
    cloud_username: str | None = Field(
        default=None, description="Basic-auth user towards the cloud (default: the charger id)."
    )
    cloud_password: Annotated[SecretStr | None, Field(description="Cloud Basic-auth password.")] = (
        None
    )
    model: str | None = Field(
        default=None,
        description="Charger profile: a file name in hardware/chargers/ (no .toml).",
    )
    idtag_format: str | None = Field(
        default=None,
        description="How it reports card UIDs (default: from its model, else 'auto').",
    )
    free_charging_tag: str | None = Field(
        default=None,
        description="The idTag it sends when set to free charging; always accepted.",
    )
    min_current_a: float = Field(default=6.0, ge=6, le=80, description="Lowest current (A).")
    max_current_a: float = Field(default=16.0, ge=6, le=500, description="Highest current (A).")
    fallback_current_a: float = Field(
        default=0.0, ge=0, le=500, description="Its share while the meter is lost (A; 0 = pause)."
    )
    priority: Literal["normal", "vip"] = Field(default="normal", description="'vip' goes first.")
    phases: str = Field(
        default="L1L2L3",
        description="Site phases its L1, L2, L3 are wired to, in order, e.g. 'L2L3L1'; "
        "a single-phase charger names one phase, e.g. 'L2'.",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not CHARGER_ID_PATTERN.match(value):
            raise ValueError(
                "must be 1-48 characters of letters, digits and . _ - * + = | @ ~ "
                "(no ':' or '/', it is the URL path segment and the Basic-auth user name)"
            )
        return value

    @field_validator("idtag_format")
    @classmethod
    def _idtag_format(cls, value: str | None) -> str | None:
        from edgegw.auth.idtags import IdTagFormat  # noqa: PLC0415

        if value is not None and value not in {f.value for f in IdTagFormat}:
            allowed = ", ".join(f.value for f in IdTagFormat)
            raise ValueError(f"{value!r} is not an idTag format; use one of: {allowed}")
        return value

    @field_validator("phases")
    @classmethod
    def _phases(cls, value: str) -> str:
        names = [value[i : i + 2].upper() for i in range(0, len(value), 2)]
        if (
            len(value) % 2
            or not 1 <= len(names) <= 3
            or len(set(names)) != len(names)
            or any(n not in ("L1", "L2", "L3") for n in names)
        ):
            raise ValueError("must be 1 to 3 distinct site phases in order, e.g. 'L1L2L3', 'L2'")
        return "".join(names)

    @model_validator(mode="after")
    def _currents(self) -> ChargerConfig:
        if self.max_current_a < self.min_current_a:
            raise ValueError(
                f"max_current_a ({self.max_current_a}) is below min_current_a "
                f"({self.min_current_a})"
            )
        if self.fallback_current_a > self.max_current_a:
            raise ValueError("fallback_current_a cannot exceed max_current_a")
        return self

    def site_phases(self) -> tuple[int, ...]:
        """Indexes (0 = L1) of the site phases its L1, L2, L3 are wired to."""
        return tuple(int(self.phases[i + 1]) - 1 for i in range(0, len(self.phases), 2))

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str | None) -> str | None:
        from edgegw.auth.passwords import check_hash_format  # noqa: PLC0415

        if value is not None:
            check_hash_format(value)
        return value

    @field_validator("cloud_password", mode="before")
    @classmethod
    def _cloud_password(cls, value: Any, info: ValidationInfo) -> SecretStr | None:
        if value is None or isinstance(value, SecretStr):
            return value
        if isinstance(value, dict):
            source: SecretSource
            if set(value) == {"file"}:
                source = SecretFile.model_validate(value)
            elif set(value) == {"credential"}:
                source = SecretCredential.model_validate(value)
            else:
                raise ValueError('must be a string, { file = "..." } or { credential = "..." }')
            return _resolve_secret(source, info)
        if isinstance(value, str):
            return SecretStr(value)
        raise ValueError('must be a string, { file = "..." } or { credential = "..." }')


class Config(_Model):
    """The whole edgegw configuration."""

    server: ServerConfig = ServerConfig()
    cloud: CloudConfig | None = Field(
        default=None, description="Omit for a standalone site (no cloud CSMS)."
    )
    store: StoreConfig = StoreConfig()
    auth: AuthConfig = AuthConfig()
    sync: SyncConfig = SyncConfig()
    logging: LoggingConfig = LoggingConfig()
    daemon: DaemonConfig = DaemonConfig()
    control: ControlConfig = ControlConfig()
    site: SiteConfig | None = Field(default=None, description="Omit to run without load capping.")
    mqtt: MqttConfig | None = Field(default=None, description="Omit to publish no telemetry.")
    buses: dict[str, BusConfig] = Field(default_factory=dict)
    meters: list[MeterConfig] = Field(default_factory=list)
    chargers: list[ChargerConfig] = Field(default_factory=list)

    @field_validator("chargers")
    @classmethod
    def _unique_chargers(cls, chargers: list[ChargerConfig]) -> list[ChargerConfig]:
        seen: set[str] = set()
        for charger in chargers:
            key = charger.id.lower()
            if key in seen:
                raise ValueError(f"charger id {charger.id!r} is listed twice")
            seen.add(key)
        return chargers

    @model_validator(mode="after")
    def _energy(self) -> Config:
        problems: list[str] = []
        for i, meter in enumerate(self.meters):
            if meter.bus not in self.buses:
                problems.append(
                    f"meters[{i}].bus: no [buses.{meter.bus}] section "
                    f"(defined: {', '.join(sorted(self.buses)) or 'none'})"
                )
        site_meters = [m for m in self.meters if m.role == "site"]
        if len(site_meters) > 1:
            problems.append("meters: only one meter may have role = 'site'")
        if self.site is not None:
            if not site_meters:
                problems.append("site: load capping needs a meter with role = 'site'")
            limits = self.site.limits()
            fallback = [0.0, 0.0, 0.0]
            for charger in self.chargers:
                for phase in charger.site_phases():
                    fallback[phase] += charger.fallback_current_a
            for phase, (total, limit) in enumerate(zip(fallback, limits, strict=True), 1):
                if total > limit - self.site.margin_a:
                    problems.append(
                        f"chargers: fallback_current_a adds up to {total:g} A on L{phase}, above "
                        f"limit_a - margin_a ({limit - self.site.margin_a:g} A): the main fuse "
                        "could trip while the meter is lost"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def charger(self, charger_id: str) -> ChargerConfig | None:
        for charger in self.chargers:
            if charger.id == charger_id:
                return charger
        return None


def _format_location(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-wrap"):
            continue
        elif "[" in part or part in ("str", "SecretFile", "SecretCredential"):
            continue  # pydantic union branch names, not keys
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _problems(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_url=False):
        where = _format_location(tuple(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the configuration reference)"
        elif item["type"] == "missing":
            message = "required key is missing"
        line = f"{where}: {message}"
        if line not in problems:
            problems.append(line)
    return problems


def parse_config(
    data: Mapping[str, Any], *, source: str = "<config>", credentials_directory: str | None = None
) -> Config:
    """Validate already-parsed TOML data; raise :class:`ConfigError` listing every problem."""
    try:
        return Config.model_validate(data, context={"credentials_directory": credentials_directory})
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config(path: Path, *, credentials_directory: str | None = None) -> Config:
    """Read and validate a TOML configuration file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found (create one with 'edgegw init')"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"TOML syntax error: {exc}"]) from None
    return parse_config(data, source=str(path), credentials_directory=credentials_directory)
