"""The whole configuration: every section in one model."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from edgegw.config.base import _Model
from edgegw.config.charger import ChargerConfig
from edgegw.config.energy import BusConfig, CircuitConfig, MeterConfig, SiteConfig
from edgegw.config.limits import LimitConfig, PeakConfig, limit_problems
from edgegw.config.network import CloudConfig, ServerConfig
from edgegw.config.sections import (
    AuthConfig,
    ControlConfig,
    DaemonConfig,
    LoggingConfig,
    StoreConfig,
    SyncConfig,
    TariffConfig,
    _MqttSection,
)
from edgegw.config.validation import _energy_problems


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
    circuits: list[CircuitConfig] = Field(
        default_factory=list,
        description="Distribution boards below the site (load capping); none: the site alone.",
    )
    chargers: list[ChargerConfig] = Field(default_factory=list)
    limits: list[LimitConfig] = Field(
        default_factory=list,
        description="Signals from outside that lower the site or a circuit (§14a EnWG among them).",
    )
    peak: PeakConfig | None = Field(
        default=None, description="Capacity-peak shaving; omit to shave nothing."
    )
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
        problems = _energy_problems(
            self.buses, self.meters, self.site, self.chargers, self.circuits
        )
        problems += limit_problems(
            self.limits,
            self.peak,
            site=self.site,
            circuits=self.circuits,
            chargers=self.chargers,
            bus_names=self.buses,
            mqtt=self.mqtt is not None,
        )
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
