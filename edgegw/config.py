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
    unknown_cards: Literal["reject", "accept"] = Field(
        default="reject",
        description="Cards nobody vouches for when the gateway must decide (standalone/offline).",
    )


class DaemonConfig(_Model):
    shutdown_timeout: float = Field(
        default=10, gt=0, le=300, description="Budget for a clean shutdown (s)."
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

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not CHARGER_ID_PATTERN.match(value):
            raise ValueError(
                "must be 1-48 characters of letters, digits and . _ - * + = | @ ~ "
                "(no ':' or '/', it is the URL path segment and the Basic-auth user name)"
            )
        return value

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
    logging: LoggingConfig = LoggingConfig()
    daemon: DaemonConfig = DaemonConfig()
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
