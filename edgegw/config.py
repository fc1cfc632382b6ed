"""The configuration file: one typed model, validated as a whole.

The file is TOML (default ``/etc/edgegw/edgegw.toml``). Unknown keys are rejected and every
problem is reported with its key path (``chargers[1].cloud_password``) and what is allowed, all at
once, so an installer fixes the file in one pass. Secrets may be written inline, or read from a
file (``{ file = "/etc/edgegw/secrets/cp1" }``) or a systemd credential
(``{ credential = "cp1-cloud" }``, looked up in ``$CREDENTIALS_DIRECTORY``); they are resolved when
the file is loaded, never at import time, and never printed.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import stat
import tomllib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import annotated_types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edgegw.telemetry.settings import MqttConfig

log = logging.getLogger(__name__)

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


FLOAT_CEILING = 1e6
"""The largest magnitude any float setting may have where its field sets no tighter bound
(seconds, amps, days, rates): more is a typo or an attack (1e308 lifts load capping)."""


class _FiniteFloats(BaseModel):
    """Every float of a model that inherits this is a finite number inside its range.

    One check for all of them: the range is the field's own ``ge``/``gt``/``le``/``lt`` and
    +-:data:`FLOAT_CEILING` where it sets none; per-phase lists are checked value by value;
    numbers written as strings (``"nan"``) too. It runs before pydantic's own checks, so every
    such problem reads the same: the key path (added by pydantic), then the allowed range.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _finite_floats(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or not _holds_float(field.annotation):
            return value
        for item in value if isinstance(value, list | tuple) else (value,):
            number = _as_number(item)
            if number is not None:
                _check_float(number, field.metadata)
        return value


def _holds_float(annotation: Any) -> bool:
    """``float``, or a union or tuple with a float in it (``float | tuple[float, ...]``)."""
    if annotation is float:
        return True
    return any(_holds_float(arg) for arg in get_args(annotation))


def _as_number(item: Any) -> float | None:
    """The number ``item`` stands for, or None when it is none (pydantic reports that)."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return float(item) if abs(item) < 2**1023 else math.inf
    if isinstance(item, float):
        return item
    if isinstance(item, str):
        try:
            return float(item)
        except ValueError:
            return None
    return None


def _check_float(number: float, metadata: Sequence[Any]) -> None:
    low, low_open, high, high_open = -FLOAT_CEILING, False, FLOAT_CEILING, False
    for bound in metadata:
        if isinstance(bound, annotated_types.Ge):
            low, low_open = float(bound.ge), False  # type: ignore[arg-type]
        elif isinstance(bound, annotated_types.Gt):
            low, low_open = float(bound.gt), True  # type: ignore[arg-type]
        elif isinstance(bound, annotated_types.Le):
            high, high_open = min(float(bound.le), FLOAT_CEILING), False  # type: ignore[arg-type]
        elif isinstance(bound, annotated_types.Lt):
            high, high_open = min(float(bound.lt), FLOAT_CEILING), True  # type: ignore[arg-type]
    inside = (number > low if low_open else number >= low) and (
        number < high if high_open else number <= high
    )
    if not (math.isfinite(number) and inside):
        raise ValueError(
            f"must be a finite number {'>' if low_open else '>='} {_bound(low)} and "
            f"{'<' if high_open else '<='} {_bound(high)} (got {number:g})"
        )


def _bound(number: float) -> str:
    return str(int(number)) if number.is_integer() else f"{number:g}"


class _Model(_FiniteFloats):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=BaseModel)


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
        directory = _credentials_directory(info)
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


def _credentials_directory(info: ValidationInfo) -> str | None:
    ctx: Mapping[str, Any] = info.context or {}
    directory = ctx.get("credentials_directory") or os.environ.get("CREDENTIALS_DIRECTORY")
    return str(directory) if directory else None


def _secret_path(value: Any, info: ValidationInfo) -> Path | None:
    """A private-key path: a plain path, ``{ file = ... }`` or ``{ credential = ... }``.

    A systemd credential resolves to ``$CREDENTIALS_DIRECTORY/<name>`` (the key file itself is
    read by the TLS library, never by us).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) == {"file"}:
            path = SecretFile.model_validate(value).file
        elif set(value) == {"credential"}:
            name = SecretCredential.model_validate(value).credential
            directory = _credentials_directory(info)
            if not directory:
                raise ValueError(
                    f"credential {name!r} requested but $CREDENTIALS_DIRECTORY is not set "
                    "(use LoadCredential= in the systemd unit, or a path)"
                )
            path = Path(directory) / name
        else:
            raise ValueError('must be a path, { file = "..." } or { credential = "..." }')
    elif isinstance(value, str | Path):
        path = Path(value)
    else:
        raise ValueError('must be a path, { file = "..." } or { credential = "..." }')
    return _existing(path)


def _existing(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    return path


SecurityProfile = Literal[1, 2, 3]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    # -- transport security (OCPP Security Profiles)
    security_profile: SecurityProfile = Field(
        default=1,
        description="Lowest OCPP Security Profile of the site: 1 = ws:// + Basic auth, "
        "2 = wss:// + Basic auth, 3 = wss:// + client certificate. With 2 or 3 the port "
        "speaks TLS only; a charger's own security_profile may raise it, never lower it.",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="Server certificate chain (PEM) for wss://."
    )
    tls_key_file: Path | None = Field(
        default=None,
        description='Its private key (PEM): a path, { file = "..." } or '
        '{ credential = "..." } (systemd LoadCredential=).',
    )
    tls_client_ca_file: Path | None = Field(
        default=None,
        description="CA certificate(s) (PEM) that sign chargers' client certificates (profile 3).",
    )
    tls_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="A second, TLS listener next to the plain port, for a profile-1 site "
        "where some chargers are raised to profile 2 or 3 (0 = any free port).",
    )
    # -- limits
    handshake_timeout: float = Field(
        default=10, gt=0, le=120, description="TLS plus WebSocket opening handshake budget (s)."
    )
    allowed_networks: list[IpNetwork] = Field(
        default_factory=list,
        description='Source networks chargers may connect from, e.g. ["10.0.0.0/8"]; empty = any.',
    )
    max_connections_per_address: int = Field(
        default=32,
        ge=1,
        description="Open plus opening connections from one address (IPv6: one /64); raise it "
        "when many chargers share one NAT address or a local TLS proxy.",
    )
    max_pending_handshakes: int = Field(
        default=64, ge=1, description="Connections in their opening handshake at once."
    )
    max_pending_per_address: int | None = Field(
        default=None,
        ge=1,
        description="Of those, from one address (IPv6: one /64); default a quarter of "
        "max_pending_handshakes. Addresses a configured charger logged in from have a reserve "
        "beyond max_pending_handshakes.",
    )
    max_connects_per_minute: float = Field(
        default=60,
        gt=0,
        le=6000,
        description="Accepted connections per charger identity (a burst of 20, then this rate); "
        "a charger reconnecting faster gets HTTP 429 and opens no cloud connection.",
    )
    max_messages_per_second: float = Field(
        default=20,
        ge=0,
        description="Per charger identity, across its connections; answers to calls sent to "
        "it are free; faster senders are slowed (0 = no limit).",
    )
    message_burst: int = Field(
        default=60, ge=1, description="Messages a connection may send at once above the rate."
    )
    flood_close_after: float = Field(
        default=10, gt=0, description="Close (1008) a connection above the rate this long (s)."
    )
    failed_logins_before_backoff: int = Field(
        default=3, ge=0, description="Failed logins per identity or address before back-off."
    )
    login_backoff_max: float = Field(
        default=300, gt=0, description="Longest back-off after failed logins (s); doubles."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "//" in value or any(c in value for c in "?#"):
            raise ValueError("must start with '/' and contain no '//', '?' or '#'")
        return value.rstrip("/") or ""

    @field_validator("tls_key_file", mode="before")
    @classmethod
    def _key_file(cls, value: Any, info: ValidationInfo) -> Path | None:
        return _secret_path(value, info)

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        networks: list[IpNetwork] = []
        for item in value:
            try:
                networks.append(ipaddress.ip_network(str(item), strict=True))
            except ValueError as exc:
                raise ValueError(
                    f"{item!r} is not a network like '10.0.0.0/8' or 'fd00::/8' ({exc})"
                ) from None
        return networks

    @field_validator("tls_cert_file", "tls_client_ca_file")
    @classmethod
    def _file(cls, value: Path | None) -> Path | None:
        return _existing(value)

    @model_validator(mode="after")
    def _tls(self) -> ServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        needs_tls = self.security_profile >= 2 or self.tls_port is not None
        if needs_tls and self.tls_cert_file is None:
            what = (
                "tls_port"
                if self.security_profile == 1
                else f"security_profile {self.security_profile}"
            )
            raise ValueError(f"{what} needs tls_cert_file and tls_key_file")
        if self.security_profile == 3 and self.tls_client_ca_file is None:
            raise ValueError("security_profile 3 needs tls_client_ca_file (the chargers' CA)")
        if self.tls_port is not None and self.security_profile >= 2:
            raise ValueError(
                "tls_port is for a profile-1 site with some TLS chargers; with "
                f"security_profile {self.security_profile} the port itself is TLS-only"
            )
        if self.tls_port is not None and self.tls_port == self.port and self.port != 0:
            raise ValueError("tls_port must differ from port")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None


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
    security_profile: SecurityProfile | None = Field(
        default=None,
        description="Security Profile towards the CSMS; default: 1 for ws://, 2 for wss://, "
        "3 when a client certificate is configured. 2 and 3 need a wss:// url.",
    )
    tls_cert_file: Path | None = Field(
        default=None,
        description="Client certificate (PEM) of the gateway for profile 3 (a charger's own "
        "cloud_tls_cert_file takes precedence).",
    )
    tls_key_file: Path | None = Field(
        default=None,
        description='Its private key: a path, { file = "..." } or { credential = "..." }.',
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError("must be a ws:// or wss:// URL with a host name")
        if parts.query or parts.fragment:
            raise ValueError("must not contain a query or fragment")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not contain user:password (it would show in logs); use the chargers' "
                "cloud_username / cloud_password"
            )
        return value.rstrip("/")

    @field_validator("tls_key_file", mode="before")
    @classmethod
    def _key_file(cls, value: Any, info: ValidationInfo) -> Path | None:
        return _secret_path(value, info)

    @field_validator("tls_cert_file")
    @classmethod
    def _cert_file(cls, value: Path | None) -> Path | None:
        return _existing(value)

    @property
    def tls(self) -> bool:
        return self.url.startswith("wss://")

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> CloudConfig:
        if self.ca_file is not None:
            if not self.url.startswith("wss://"):
                raise ValueError("ca_file is only used with a wss:// url")
            if not self.ca_file.is_file():
                raise ValueError(f"ca_file {self.ca_file} does not exist")
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_min_delay")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_cert_file is not None and not self.tls:
            raise ValueError("tls_cert_file (profile 3) needs a wss:// url")
        if self.security_profile is not None:
            if self.security_profile >= 2 and not self.tls:
                raise ValueError(
                    f"security_profile {self.security_profile} needs a wss:// url; the gateway "
                    "never falls back to plain ws://"
                )
            if self.security_profile == 1 and self.tls:
                raise ValueError(
                    "security_profile 1 is plain ws://; a wss:// url is profile 2 or 3"
                )
        return self


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


MAX_SITE_LIMIT_A = 10_000.0
"""No low-voltage site connection carries more per phase; a larger limit_a caps nothing."""


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
    role: Literal["site", "monitor"] = Field(
        default="site", description="'site': load capping follows it; 'monitor': shown only."
    )
    poll_interval: float = Field(default=1.0, gt=0, le=300, description="Seconds between reads.")


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
    security_profile: SecurityProfile | None = Field(
        default=None,
        description="Raise this charger above the site's server.security_profile (never lower).",
    )
    certificate_cn: str | None = Field(
        default=None,
        min_length=1,
        description="Subject CN of its client certificate when it is not the charger id "
        "(some vendors put the serial number there).",
    )
    cloud_tls_cert_file: Path | None = Field(
        default=None, description="Its own client certificate towards the cloud (profile 3)."
    )
    cloud_tls_key_file: Path | None = Field(
        default=None,
        description='Its private key: a path, { file = "..." } or { credential = "..." }.',
    )

    @field_validator("cloud_tls_key_file", mode="before")
    @classmethod
    def _cloud_key_file(cls, value: Any, info: ValidationInfo) -> Path | None:
        return _secret_path(value, info)

    @field_validator("cloud_tls_cert_file")
    @classmethod
    def _cloud_cert_file(cls, value: Path | None) -> Path | None:
        return _existing(value)

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
        if (self.cloud_tls_cert_file is None) != (self.cloud_tls_key_file is None):
            raise ValueError("cloud_tls_cert_file and cloud_tls_key_file go together")
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
    mqtt: _MqttSection | None = Field(default=None, description="Omit to publish no telemetry.")
    buses: dict[str, BusConfig] = Field(default_factory=dict)
    meters: list[MeterConfig] = Field(default_factory=list)
    chargers: list[ChargerConfig] = Field(default_factory=list)
    tariffs: list[TariffConfig] = Field(
        default_factory=list, description="How the building prices sessions (reports)."
    )
    _by_id: dict[str, ChargerConfig] = PrivateAttr(default_factory=dict)
    """``chargers`` by id: the relay, the controller and the ops look chargers up per call."""

    def model_post_init(self, context: Any, /) -> None:
        self._by_id = {charger.id: charger for charger in self.chargers}

    @field_validator("tariffs")
    @classmethod
    def _one_currency(cls, tariffs: list[TariffConfig]) -> list[TariffConfig]:
        currencies = sorted({t.currency for t in tariffs})
        if len(currencies) > 1:
            raise ValueError(
                f"the tariffs use several currencies ({', '.join(currencies)}); reports add "
                "costs up, so give every tariff the site's one currency"
            )
        return tariffs

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
        problems = _energy_problems(self.buses, self.meters, self.site, self.chargers)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _security(self) -> Config:
        """Profiles are only ever raised, and every raised profile has what it needs."""
        problems: list[str] = []
        server = self.server
        site = server.security_profile
        for i, charger in enumerate(self.chargers):
            where = f"chargers[{i}]"
            profile = charger.security_profile
            if profile is not None and profile < site:
                problems.append(
                    f"{where}.security_profile: {profile} is below the site's "
                    f"server.security_profile {site}; a charger's profile may only be raised"
                )
            effective = max(profile or site, site)
            if effective >= 2 and not server.tls_enabled:
                problems.append(
                    f"{where}.security_profile: profile {effective} needs TLS: set "
                    "server.tls_port, tls_cert_file and tls_key_file"
                )
            if effective == 3 and server.tls_client_ca_file is None:
                problems.append(
                    f"{where}.security_profile: profile 3 needs server.tls_client_ca_file"
                )
            if effective == 2 and charger.password_hash is None:
                problems.append(
                    f"{where}.password_hash: security profile 2 authenticates the charger with "
                    "its Basic-auth password; set one ('edgegw password-hash')"
                )
        cloud = self.cloud
        if cloud is not None:
            tls_chargers = site >= 2 or any((c.security_profile or 1) >= 2 for c in self.chargers)
            if not cloud.tls and tls_chargers and cloud.security_profile is None:
                problems.append(
                    "cloud.url: ws:// would carry chargers that use TLS to the gateway over "
                    "plain text; use wss://, or set cloud.security_profile = 1 to accept that "
                    "(e.g. the uplink is a VPN)"
                )
            if cloud.security_profile == 3 and cloud.tls_cert_file is None:
                missing = [c.id for c in self.chargers if c.cloud_tls_cert_file is None]
                if missing:
                    problems.append(
                        "cloud.security_profile: 3 needs cloud.tls_cert_file, or "
                        f"cloud_tls_cert_file on every charger (missing: {', '.join(missing)})"
                    )
                if server.allow_unknown_chargers:
                    problems.append(
                        "cloud.security_profile: 3 with server.allow_unknown_chargers needs the "
                        "gateway's own cloud.tls_cert_file"
                    )
            for i, charger in enumerate(self.chargers):
                if charger.cloud_tls_cert_file is not None and not cloud.tls:
                    problems.append(f"chargers[{i}].cloud_tls_cert_file: needs a wss:// cloud.url")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def charger(self, charger_id: str) -> ChargerConfig | None:
        return self._by_id.get(charger_id)

    def security_profile(self, charger_id: str) -> int:
        """The lowest Security Profile ``charger_id`` may connect with."""
        site = self.server.security_profile
        charger = self.charger(charger_id)
        if charger is None or charger.security_profile is None:
            return site
        return max(site, charger.security_profile)

    def cloud_profile(self, charger_id: str) -> int:
        """The Security Profile of ``charger_id``'s link to the cloud (0 without a cloud)."""
        cloud = self.cloud
        if cloud is None:
            return 0
        if cloud.security_profile is not None:
            return cloud.security_profile
        if not cloud.tls:
            return 1
        charger = self.charger(charger_id)
        has_cert = cloud.tls_cert_file is not None or (
            charger is not None and charger.cloud_tls_cert_file is not None
        )
        return 3 if has_cert else 2


def _energy_problems(
    bus_names: Collection[str] | None,
    meters: Sequence[MeterConfig] | None,
    site: SiteConfig | None,
    chargers: Sequence[ChargerConfig] | None,
) -> list[str]:
    """Meters, buses, site and chargers checked together; ``None`` = not known to be valid
    (the checks that need it are skipped, so a broken section causes no false alarm)."""
    problems: list[str] = []
    if meters is not None and bus_names is not None:
        for i, meter in enumerate(meters):
            if meter.bus not in bus_names:
                problems.append(
                    f"meters[{i}].bus: no [buses.{meter.bus}] section "
                    f"(defined: {', '.join(sorted(bus_names)) or 'none'})"
                )
    site_meters = [m for m in meters or () if m.role == "site"]
    if len(site_meters) > 1:
        problems.append("meters: only one meter may have role = 'site'")
    if site is not None:
        if meters is not None and not site_meters:
            problems.append("site: load capping needs a meter with role = 'site'")
        limits = site.limits()
        fallback = [0.0, 0.0, 0.0]
        for charger in chargers or ():
            for phase in charger.site_phases():
                fallback[phase] += charger.fallback_current_a
        for phase, (total, limit) in enumerate(zip(fallback, limits, strict=True), 1):
            if chargers is not None and total > limit - site.margin_a:
                problems.append(
                    f"chargers: fallback_current_a adds up to {total:g} A on L{phase}, above "
                    f"limit_a - margin_a ({limit - site.margin_a:g} A): the main fuse "
                    "could trip while the meter is lost"
                )
    return problems


def _valid_items(raw: Any, model: type[_M], context: Mapping[str, Any]) -> list[_M] | None:
    """Every item of a TOML array validated alone; ``None`` unless all of them are valid."""
    if not isinstance(raw, list):
        return None
    parsed: list[_M] = []
    for item in raw:
        try:
            parsed.append(model.model_validate(item, context=context))
        except ValidationError:
            return None
    return parsed


def _cross_section_problems(data: Mapping[str, Any], context: Mapping[str, Any]) -> list[str]:
    """The whole-file checks, run on the sections that are valid on their own.

    pydantic runs a model validator only once every field is valid, so a typo in [server]
    would hide a meter that points at a missing bus until the typo is fixed: the installer
    would fix the file in several rounds instead of one.
    """
    problems: list[str] = []
    raw_chargers = data.get("chargers", [])
    seen: set[str] = set()
    for item in raw_chargers if isinstance(raw_chargers, list) else ():
        charger_id = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(charger_id, str):
            if charger_id.lower() in seen:
                problems.append(f"chargers: charger id {charger_id!r} is listed twice")
            seen.add(charger_id.lower())
    buses = data.get("buses", {})
    site: SiteConfig | None = None
    if "site" in data:
        try:
            site = SiteConfig.model_validate(data["site"], context=context)
        except ValidationError:
            site = None
    problems += _energy_problems(
        list(buses) if isinstance(buses, Mapping) else None,
        _valid_items(data.get("meters", []), MeterConfig, context),
        site,
        _valid_items(raw_chargers, ChargerConfig, context),
    )
    return problems


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
        if where == "(top level)":  # whole-file checks name their own sections
            problems.extend(p for p in message.split("\n") if p not in problems)
            continue
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
    context = {"credentials_directory": credentials_directory}
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        problems = _problems(exc)
        problems += [p for p in _cross_section_problems(data, context) if p not in problems]
        raise ConfigError(source, problems) from None


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
    config = parse_config(data, source=str(path), credentials_directory=credentials_directory)
    _warn_if_exposed(path, data)
    return config


def inline_secrets(data: Mapping[str, Any]) -> list[str]:
    """Key paths of secrets written inline in the file (rather than a file or credential)."""
    found: list[str] = []
    chargers = data.get("chargers")
    if isinstance(chargers, list):
        for i, charger in enumerate(chargers):
            if isinstance(charger, dict) and isinstance(charger.get("cloud_password"), str):
                found.append(f"chargers[{i}].cloud_password")
    return found


def _warn_if_exposed(path: Path, data: Mapping[str, Any]) -> None:
    """A file with inline secrets should not be readable by other users (mode 0600/0640)."""
    secrets = inline_secrets(data)
    if not secrets:
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        log.warning(
            "%s holds secrets (%s) but is readable or writable by other users (mode %04o); "
            "chmod 0640 (root:edgegw) or move them to systemd credentials",
            path,
            ", ".join(secrets),
            stat.S_IMODE(mode),
        )
