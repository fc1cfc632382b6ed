"""The ``[mqtt]`` section of the configuration.

MQTT is off unless the section is present. The broker password lives in a file of its own
(``password_file``, mode 0600 or a systemd credential path) so the main configuration can be
world-readable; it is read when the publisher starts and is never logged or shown.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_SEGMENT_FORBIDDEN = re.compile(r"[+#\x00]")


def default_node_name() -> str:
    """This box's host name, reduced to characters safe in topics and client ids."""
    name = socket.gethostname().split(".", 1)[0] or "gateway"
    return re.sub(r"[^A-Za-z0-9_-]", "-", name).strip("-") or "gateway"


def _default_prefix() -> str:
    return f"edgegw/{default_node_name()}"


def _default_client_id() -> str:
    return f"edgegw-{default_node_name()}"


class MqttSetupError(ValueError):
    """A file the MQTT connection needs (password, certificate, key) cannot be used."""


class MqttSecretError(MqttSetupError):
    """The broker password file cannot be used."""


class MqttTlsConfig(BaseModel):
    """TLS towards the broker: verify it with ``ca_file`` (default: the system's CAs), and
    present a client certificate when the broker asks for one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the broker's certificate."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM).")
    key_file: Path | None = Field(default=None, description="Client certificate's key (PEM).")
    check_hostname: bool = Field(
        default=True, description="Check the broker's certificate names its host."
    )

    @model_validator(mode="after")
    def _files(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        for name in ("ca_file", "cert_file", "key_file"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} does not exist")
        return self


class MqttConfig(BaseModel):
    """Where and how the gateway publishes its telemetry. Omit the section to disable MQTT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 for TLS).")
    tls: MqttTlsConfig | None = Field(default=None, description="Omit for plain TCP.")
    username: str | None = Field(default=None, min_length=1, description="Broker user name.")
    password_file: Path | None = Field(
        default=None,
        description="File holding the broker password (trailing newline removed).",
    )
    client_id: str = Field(
        default_factory=_default_client_id,
        min_length=1,
        max_length=128,
        description="MQTT client id; unique on the broker (default edgegw-<host name>).",
    )
    topic_prefix: str = Field(
        default_factory=_default_prefix,
        description="Every topic starts with this (default edgegw/<host name>).",
    )
    qos: Literal[0, 1, 2] = Field(default=1, description="QoS of state and event messages.")
    retain: bool = Field(default=True, description="Retain the state topics.")
    keepalive: int = Field(
        default=30, ge=5, le=3600, description="Seconds between keep-alive pings."
    )
    timeout: float = Field(
        default=10, gt=0, le=120, description="Broker must answer a connect or publish within (s)."
    )
    reconnect_min_delay: float = Field(
        default=1, gt=0, description="First reconnect delay (s); doubles up to the maximum."
    )
    reconnect_max_delay: float = Field(default=60, gt=0, description="Longest reconnect delay (s).")
    min_interval: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="A state topic is published at most once per this many seconds.",
    )
    measurement_interval: float = Field(
        default=10,
        ge=0,
        le=3600,
        description="A state topic whose only change is a measured value (current, power, "
        "energy) is published at most once per this many seconds (and min_interval); any other "
        "change (a status, the limit, the cloud link, the meter's health) goes out within "
        "min_interval.",
    )
    publish_interval: float = Field(
        default=60,
        ge=0,
        le=86400,
        description="Republish every state topic at least this often (s; 0 = only on change).",
    )
    event_buffer: int = Field(
        default=100,
        ge=0,
        le=10000,
        description="Events kept while the broker is away (oldest dropped first).",
    )
    publish_cards: bool = Field(
        default=False,
        description="Include a session's idTag and card owner in charger state and events.",
    )
    discovery: bool = Field(default=True, description="Publish Home Assistant discovery.")
    discovery_prefix: str = Field(
        default="homeassistant", description="Home Assistant's discovery prefix."
    )
    commands_enabled: bool = Field(
        default=False,
        description="Accept commands (temporary site limit, charger enable, stop session).",
    )
    max_limit_duration: float = Field(
        default=86400,
        gt=0,
        description="Longest temporary site limit a command may set (s).",
    )

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError("must be non-empty, without a leading or trailing '/' or '//'")
        if _SEGMENT_FORBIDDEN.search(value):
            raise ValueError("must not contain the MQTT wildcards '+' or '#'")
        if value.startswith("$"):
            raise ValueError("must not start with '$' (reserved for the broker)")
        if len(value.encode()) > 200:
            raise ValueError("is too long (at most 200 bytes)")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if _SEGMENT_FORBIDDEN.search(value) or "/" in value:
            raise ValueError("must not contain '/', '+' or '#'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password_file is not None:
            if self.username is None:
                raise ValueError("password_file needs username")
            if not self.password_file.is_file():
                raise ValueError(f"password_file {self.password_file} does not exist")
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_min_delay")
        if self.publish_interval and self.publish_interval < self.min_interval:
            raise ValueError("publish_interval must be 0 or >= min_interval")
        if self.discovery and self.discovery_prefix == self.topic_prefix:
            raise ValueError("discovery_prefix and topic_prefix must differ")
        return self

    def read_password(self) -> SecretStr | None:
        """The broker password from ``password_file`` (None without one)."""
        if self.password_file is None:
            return None
        try:
            text = self.password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise MqttSecretError(
                f"mqtt.password_file: cannot read {self.password_file}: {exc.strerror}"
            ) from None
        secret = text.rstrip("\r\n")
        if not secret:
            raise MqttSecretError(f"mqtt.password_file: {self.password_file} is empty")
        return SecretStr(secret)
