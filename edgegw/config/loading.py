"""Reading the file: TOML parsed, validated as a whole, secrets resolved, a warning when a file
with inline secrets is readable by others.
"""

from __future__ import annotations

import logging
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgegw.config.base import ConfigError
from edgegw.config.model import Config
from edgegw.config.validation import _cross_section_problems, _problems

log = logging.getLogger(__name__)


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
