"""The connection sections: ``[server]`` (where chargers connect) and ``[cloud]`` (the CSMS)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edgegw.config.base import _Model
from edgegw.config.secrets import _existing, _secret_path

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
