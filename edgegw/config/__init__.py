"""The configuration file: one typed model, validated as a whole.

The file is TOML (default ``/etc/edgegw/edgegw.toml``). Unknown keys are rejected and every
problem is reported with its key path (``chargers[1].cloud_password``) and what is allowed, all at
once, so an installer fixes the file in one pass. Secrets may be written inline, or read from a
file (``{ file = "/etc/edgegw/secrets/cp1" }``) or a systemd credential
(``{ credential = "cp1-cloud" }``, looked up in ``$CREDENTIALS_DIRECTORY``); they are resolved when
the file is loaded, never at import time, and never printed.

Layout: :mod:`~edgegw.config.base` (error, base model, float check), ``secrets``, the sections
(``network``, ``energy``, ``sections``, ``charger``), :mod:`~edgegw.config.model` (the whole
file), ``validation`` (cross-section checks, problem lines) and ``loading``. Every public name is
importable from ``edgegw.config``.
"""

from __future__ import annotations

from edgegw.config.base import CHARGER_ID_PATTERN, DEFAULT_CONFIG_PATH, FLOAT_CEILING, ConfigError
from edgegw.config.charger import ChargerConfig
from edgegw.config.energy import (
    MAX_SITE_LIMIT_A,
    BusConfig,
    CircuitConfig,
    MeterConfig,
    SiteConfig,
)
from edgegw.config.loading import inline_secrets, load_config, parse_config
from edgegw.config.model import Config
from edgegw.config.network import CloudConfig, IpNetwork, SecurityProfile, ServerConfig
from edgegw.config.secrets import SecretCredential, SecretFile, SecretSource
from edgegw.config.sections import (
    AuthConfig,
    ControlConfig,
    DaemonConfig,
    LoggingConfig,
    StoreConfig,
    SyncConfig,
    TariffBandConfig,
    TariffConfig,
)
from edgegw.config.validation import _format_location as _format_location

__all__ = [
    "CHARGER_ID_PATTERN",
    "DEFAULT_CONFIG_PATH",
    "FLOAT_CEILING",
    "MAX_SITE_LIMIT_A",
    "AuthConfig",
    "BusConfig",
    "ChargerConfig",
    "CircuitConfig",
    "CloudConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "DaemonConfig",
    "IpNetwork",
    "LoggingConfig",
    "MeterConfig",
    "SecretCredential",
    "SecretFile",
    "SecretSource",
    "SecurityProfile",
    "ServerConfig",
    "SiteConfig",
    "StoreConfig",
    "SyncConfig",
    "TariffBandConfig",
    "TariffConfig",
    "inline_secrets",
    "load_config",
    "parse_config",
]
